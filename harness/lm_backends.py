"""lm-eval model backends that fit prompts first and never lose finished work.

`ServerLM` talks to any OpenAI-compatible server (the vLLM one the harness starts, or the user's
`--base-url`). Per task it uses the endpoint the task declares in its YAML
(`metadata: {endpoint: chat|completion}`; default completion):

* chat: the prompt is one user turn; the server applies the model's chat template.
* completion: the prompt is sent as is (answer prefixes work as a prefill).

Requests run concurrently. A failed request (connection error, timeout, 408/429/5xx) is retried
with exponential backoff; when retries run out it is recorded as an error for that sample and the
run goes on. If the server stops answering altogether, the remaining requests fail fast instead of
each waiting through its retries. Successful answers go into lm-eval's request cache (`CachingLM`)
as they arrive, so a rerun sends only what is missing; errors are removed from the cache after the
run so that a rerun retries them.

`FittedHFLM` is lm-eval's `hf` backend with the same prompt fitting and chat-template handling, so
the two backends see identical prompts.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

from lm_eval.api.model import LM

from harness.truncation import FitResult, PromptFitter, prompt_hash

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class RequestRecord:
    """Per-request accounting, merged into samples.jsonl."""

    task: str
    doc_id: int
    endpoint: str
    prompt_hash: str
    prompt_tokens: int
    original_tokens: int
    truncated: bool
    max_gen_toks: int
    completion_tokens: int | None = None
    finish_reason: str | None = None
    attempts: int = 0
    latency_s: float | None = None
    error: str | None = None
    from_cache: bool = False


@dataclass
class GenRequest:
    task: str
    doc_id: int
    endpoint: str
    fit: FitResult
    gen: dict = field(default_factory=dict)


def split_gen_kwargs(gen_kwargs: dict) -> tuple[int, dict]:
    """lm-eval generation kwargs -> (max_gen_toks, OpenAI sampling params)."""
    kw = dict(gen_kwargs or {})
    max_gen = int(kw.pop("max_gen_toks", kw.pop("max_tokens", 256)))
    until = kw.pop("until", None)
    do_sample = bool(kw.pop("do_sample", False))
    params: dict = {"max_tokens": max_gen}
    temperature = float(kw.pop("temperature", 0.0))
    params["temperature"] = temperature if (do_sample or temperature > 0) else 0.0
    for key in ("top_p", "top_k", "seed", "min_p", "repetition_penalty", "presence_penalty"):
        if key in kw:
            params[key] = kw.pop(key)
    if until:
        params["stop"] = [until] if isinstance(until, str) else list(until)
    return max_gen, params


class EndpointMixin:
    """Shared by both backends: which endpoint a task uses and how its prompts are fitted."""

    fitter: PromptFitter
    endpoints: dict[str, str]

    def endpoint_for(self, task_name: str) -> str:
        return self.endpoints.get(task_name, "completion")

    def fit_request(self, req) -> tuple[str, FitResult, int, dict]:
        context, gen_kwargs = req.args
        endpoint = self.endpoint_for(req.task_name)
        max_gen, params = split_gen_kwargs(gen_kwargs)
        return endpoint, self.fitter.fit(context, max_gen, chat=endpoint == "chat"), max_gen, params

    def record_for(self, req) -> RequestRecord:
        """The accounting of a request without sending it (used for answers read from cache)."""
        endpoint, fit, max_gen, _ = self.fit_request(req)
        return RequestRecord(req.task_name, req.doc_id, endpoint, prompt_hash(self.fitter.render(fit.text, endpoint == "chat")),
                             fit.prompt_tokens, fit.original_tokens, fit.truncated, max_gen, from_cache=True)


class ServerLM(EndpointMixin, LM):
    def __init__(self, base_url: str, model: str, tokenizer, max_model_len: int,
                 endpoints: dict[str, str] | None = None, concurrency: int = 8,
                 max_retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 600.0,
                 api_key: str | None = None, progress: bool = True):
        super().__init__()
        import requests

        root = base_url.rstrip("/")
        self.root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.model = model
        self.fitter = PromptFitter(tokenizer, max_model_len)
        self.endpoints = dict(endpoints or {})
        self.concurrency = max(1, int(concurrency))
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.timeout_s = float(timeout_s)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.progress = progress
        self.records: list[RequestRecord] = []
        self.failed_args: list[tuple] = []
        self.n_sent = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._server_down = threading.Event()
        self._requests = requests

    # lm-eval API -------------------------------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "the server backend only generates; LongAct tasks are all generate_until. "
            "Use --backend hf for log-likelihood tasks."
        )

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self.loglikelihood(requests, disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        jobs = []
        for req in requests:
            endpoint, fit, max_gen, params = self.fit_request(req)
            jobs.append((req, GenRequest(req.task_name, req.doc_id, endpoint, fit, params)))
        results: list[str] = [""] * len(jobs)
        bar = tqdm(total=len(jobs), desc="Requests", disable=disable_tqdm or not self.progress)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._send, g): i for i, (_, g) in enumerate(jobs)}
            for fut in as_completed(futures):
                i = futures[fut]
                req, g = jobs[i]
                text, rec = fut.result()
                results[i] = text
                with self._lock:
                    self.records.append(rec)
                    if rec.error is None:
                        self.cache_hook.add_partial("generate_until", req.args, text)
                    else:
                        self.failed_args.append(req.args)
                bar.update(1)
        bar.close()
        return results

    # HTTP --------------------------------------------------------------------------------

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self._requests.Session()
        return s

    def _payload(self, g: GenRequest) -> tuple[str, dict]:
        body = {"model": self.model, **g.gen}
        if g.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": g.fit.text}]
            return f"{self.root}/v1/chat/completions", body
        body["prompt"] = g.fit.text
        return f"{self.root}/v1/completions", body

    def _server_alive(self) -> bool:
        try:
            return self._session().get(f"{self.root}/health", timeout=5, headers=self.headers).status_code == 200
        except self._requests.RequestException:
            return False

    def _send(self, g: GenRequest) -> tuple[str, RequestRecord]:
        rec = RequestRecord(g.task, g.doc_id, g.endpoint,
                            prompt_hash(self.fitter.render(g.fit.text, g.endpoint == "chat")),
                            g.fit.prompt_tokens, g.fit.original_tokens, g.fit.truncated, g.gen["max_tokens"])
        url, body = self._payload(g)
        t0 = time.monotonic()
        last_error = None
        for attempt in range(self.max_retries + 1):
            if self._server_down.is_set():
                last_error = last_error or "server unreachable (an earlier request found it down)"
                break
            rec.attempts = attempt + 1
            with self._lock:
                self.n_sent += 1
            try:
                r = self._session().post(url, json=body, headers=self.headers, timeout=self.timeout_s)
                if r.status_code == 200:
                    data = r.json()
                    choice = data["choices"][0]
                    text = choice["message"].get("content") or "" if g.endpoint == "chat" else choice.get("text", "")
                    rec.finish_reason = choice.get("finish_reason")
                    rec.completion_tokens = (data.get("usage") or {}).get("completion_tokens")
                    rec.latency_s = time.monotonic() - t0
                    return text, rec
                last_error = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRYABLE_STATUS:
                    break
            except (self._requests.ConnectionError, self._requests.Timeout) as e:
                last_error = f"{type(e).__name__}: {str(e)[:300]}"
                if attempt >= 1 and not self._server_alive():
                    self._server_down.set()
                    break
            if attempt < self.max_retries:
                time.sleep(self.backoff_s * (2 ** attempt) * (0.5 + random.random()))
        rec.error = last_error
        rec.latency_s = time.monotonic() - t0
        return "", rec


def make_hf_lm(model_path: str, tokenizer, max_model_len: int, endpoints: dict[str, str], batch_size: int = 1):
    """lm-eval's HFLM with our prompt fitting; chat tasks get the chat template applied here."""
    from lm_eval.models.huggingface import HFLM

    class FittedHFLM(EndpointMixin, HFLM):
        def generate_until(self, requests, disable_tqdm: bool = False):
            fitted = []
            for req in requests:
                endpoint, fit, max_gen, _ = self.fit_request(req)
                rec = RequestRecord(req.task_name, req.doc_id, endpoint,
                                    prompt_hash(self.fitter.render(fit.text, endpoint == "chat")),
                                    fit.prompt_tokens, fit.original_tokens, fit.truncated, max_gen)
                self.records.append(rec)
                new = copy.copy(req)
                new.arguments = (self.fitter.render(fit.text, endpoint == "chat"), req.args[1])
                fitted.append(new)
            self.n_sent += len(fitted)
            return super().generate_until(fitted, disable_tqdm=disable_tqdm)

    lm = FittedHFLM(pretrained=model_path, tokenizer=tokenizer, max_length=max_model_len,
                    batch_size=batch_size, device="cpu", dtype="float32")
    lm.fitter = PromptFitter(tokenizer, max_model_len)
    lm.endpoints = dict(endpoints)
    lm.records = []
    lm.failed_args = []
    lm.n_sent = 0
    return lm


def records_as_dicts(records: list[RequestRecord]) -> list[dict]:
    return [asdict(r) for r in records]
