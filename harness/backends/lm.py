"""lm-eval model backends that fit prompts first and never lose finished work.

`ServerLM` talks to any OpenAI-compatible server (the vLLM one the harness starts, or the user's
`--base-url`). Per task it uses the endpoint the task declares in its YAML
(`metadata: {endpoint: chat|completion}`; default completion):

* chat: the prompt is one user turn; the server applies the model's chat template.
* completion: the prompt is sent as is (answer prefixes work as a prefill).

Requests run concurrently. A failed request (connection error, timeout, 408/429/5xx) is retried
with exponential backoff; when retries run out it is recorded as an error for that sample and the
run goes on. If the server stops answering altogether, the remaining requests fail fast instead of
each waiting through its retries. Each finished answer is handed to `on_result` with its request
record as it arrives (`generate_until(..., on_result=...)`: the resumable cache in
harness/run/cache.py stores both), so a rerun sends only what is missing and a cached answer
carries everything a fresh one does.

Two-pass tasks (LongBench v2 CoT) declare `metadata.followup`, a function (doc, first output,
tokenizer) -> second prompt, handed the tokenizer prompts are fitted with; both backends run the second pass and return its output, keeping the first.
With `per_request_seed`, sampled requests carry a seed derived from the run seed, task and
document (reproducible sampling on GPU servers; vLLM's CPU build crashes on per-request seeds).

`FittedHFLM` (harness/backends/hf.py) is lm-eval's `hf` backend with the same prompt fitting and
chat-template handling, so the two backends see identical prompts.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import tenacity
from lm_eval.api.model import LM

from harness import interrupt
from harness.backends.fitting import FitResult, PromptFitter, prompt_hash
from harness.backends.pool import Endpoint, EndpointPool
from harness.backends.serve import api_root, auth_headers
from tasks.thinking import join_reasoning

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
    status: int | None = None
    """HTTP status of the last failed attempt (None: answered, or failed without a response)."""
    from_cache: bool = False
    first_response: str | None = None
    """First-pass output of a two-pass task (e.g. LongBench v2 CoT reasoning)."""


@dataclass
class TaskSpec:
    """What a backend needs to know about a task beyond lm-eval's (context, gen_kwargs)."""

    endpoint: str = "completion"
    followup: Callable[[dict, str, object], str] | None = None
    """Two-pass tasks: builds the second prompt from the document, the first output and the
    evaluated tokenizer (which a second pass truncates in)."""
    followup_max_gen_toks: int = 128
    chat_template_kwargs: dict | None = None
    """Sent with chat requests and used to count their tokens (reasoning mode: enable_thinking)."""
    chat_prefix: list[dict] | None = None
    """Chat messages before the user turn (`metadata.chat_prefix`: a system prompt, a one-shot)."""

    @classmethod
    def from_task(cls, task, mode: str = "official", chat_template: str = "task") -> TaskSpec:
        """The spec of a loaded lm-eval task, read after the mode has configured it.

        `chat_template` (HELMET's use_chat_template): `task` keeps the endpoint the task declares;
        `off` sends chat tasks' prompts verbatim to the completion endpoint (base models without a
        chat template); `on` sends completion tasks' prompts as one chat user turn."""
        md = task.config.metadata or {}
        prefix = md.get("chat_prefix")
        prefix = prefix() if callable(prefix) else prefix  # YAMLs may point at a function
        endpoint = {"task": str(md.get("endpoint", "completion")), "on": "chat", "off": "completion"}[chat_template]
        spec = cls(endpoint=endpoint, followup=md.get("followup"),
                   followup_max_gen_toks=int(md.get("followup_max_gen_toks", 128)),
                   chat_prefix=[dict(m) for m in prefix or []] or None)
        if mode == "reasoning":  # thinking models answer in chat, no prefill (harness/run/modes.py)
            spec.endpoint, spec.chat_template_kwargs = "chat", {"enable_thinking": True}
            # a second pass (LongBench v2 CoT) thinks too: the same budget as the first
            spec.followup_max_gen_toks = int(task.config.generation_kwargs["max_gen_toks"])
        return spec


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


def request_seed(run_seed: int, task: str, doc_id: int, repeat: int = 0) -> int:
    """Per-request sampling seed: reruns of a sampled request give the same answer."""
    digest = hashlib.sha256(f"{run_seed}|{task}|{doc_id}|{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


OnResult = Callable[[int, str, RequestRecord], None]
"""Called as on_result(i, text, record) when request i's final answer is known and succeeded, so
finished work is saved as it arrives (the resumable cache passes one to `generate_until`)."""


class EndpointMixin:
    """Shared by both backends: task specs, prompt fitting, accounting and result streaming."""

    fitter: PromptFitter
    task_specs: dict[str, TaskSpec]
    seed: int = 1234
    # vLLM's CPU build (0.32) kills its engine on a per-request `seed` ("CPU Generator does not
    # use offset"), so per-request seeds are opt-in (`--per-request-seed`, for GPU servers).
    per_request_seed: bool = False
    records: list[RequestRecord]
    """One per request answered or failed by this backend (cached answers are not sent here)."""
    n_sent: int
    """Requests sent (HTTP attempts, or prompts generated in-process)."""

    def spec_for(self, task_name: str) -> TaskSpec:
        return self.task_specs.get(task_name) or TaskSpec()

    def fit_request(self, req, repeat: int = 0) -> tuple[str, FitResult, int, dict]:
        context, gen_kwargs = req.args
        spec = self.spec_for(req.task_name)
        max_gen, params = split_gen_kwargs(gen_kwargs)
        if self.per_request_seed and params["temperature"] > 0 and "seed" not in params:
            params["seed"] = request_seed(self.seed, req.task_name, req.doc_id, repeat)
        fit = self.fitter.fit(context, max_gen, chat=spec.endpoint == "chat", template_kwargs=spec.chat_template_kwargs,
                              prefix=spec.chat_prefix)
        return spec.endpoint, fit, max_gen, params

    def new_record(self, task: str, doc_id: int, endpoint: str, fit: FitResult, max_gen: int, **kw) -> RequestRecord:
        spec = self.spec_for(task)
        rendered = self.fitter.render(fit.text, endpoint == "chat", spec.chat_template_kwargs, spec.chat_prefix)
        return RequestRecord(task, doc_id, endpoint, prompt_hash(rendered), fit.prompt_tokens,
                             fit.original_tokens, fit.truncated, max_gen, **kw)

    def followup_request(self, req, first_text: str) -> tuple[FitResult, dict]:
        """Second-pass prompt and sampling params of a two-pass task."""
        spec = self.spec_for(req.task_name)
        _, gen_kwargs = req.args
        prompt = spec.followup(req.doc, first_text, self.fitter.tok)
        _, params = split_gen_kwargs({**gen_kwargs, "max_gen_toks": spec.followup_max_gen_toks})
        if self.per_request_seed and params["temperature"] > 0 and "seed" not in params:
            params["seed"] = request_seed(self.seed, req.task_name, req.doc_id, repeat=1_000_000)
        fit = self.fitter.fit(prompt, spec.followup_max_gen_toks, chat=spec.endpoint == "chat",
                              template_kwargs=spec.chat_template_kwargs, prefix=spec.chat_prefix)
        return fit, params


class ServerLM(EndpointMixin, LM):
    """Requests to one server, or to several serving the same weights (harness/backends/pool.py:
    least outstanding first, `concurrency` per server, a server that stops answering is taken
    out and its requests go to the others)."""

    def __init__(self, base_url: str | list[str], model: str | list[str], tokenizer, max_model_len: int,
                 task_specs: dict[str, TaskSpec] | None = None, concurrency: int = 8,
                 max_retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 600.0,
                 api_key: str | None = None, progress: bool = True, seed: int = 1234,
                 per_request_seed: bool = False):
        super().__init__()
        import requests

        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        names = [model] * len(urls) if isinstance(model, str) else list(model)
        self.pool = EndpointPool([Endpoint(api_root(u), n) for u, n in zip(urls, names)], concurrency)
        self.model = names[0]
        self.fitter = PromptFitter(tokenizer, max_model_len)
        self.task_specs = dict(task_specs or {})
        self.seed = seed
        self.per_request_seed = per_request_seed
        self.concurrency = max(1, int(concurrency))
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.timeout_s = float(timeout_s)
        self.headers = auth_headers(api_key)
        self.progress = progress
        self.records: list[RequestRecord] = []
        self.n_sent = 0
        self.last_sent_at: float | None = None
        """time.monotonic() when the last request was sent (admitted: harness/interrupt.py)."""
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._requests = requests

    # lm-eval API -------------------------------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "the server backend only generates; LongAct tasks are all generate_until. "
            "Use --backend hf for log-likelihood tasks."
        )

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self.loglikelihood(requests, disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False, on_result: OnResult | None = None) -> list[str]:
        from tqdm import tqdm

        results: list[str] = [""] * len(requests)
        records: list[RequestRecord | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="Requests", disable=disable_tqdm or not self.progress)

        def finish(i: int, text: str) -> None:
            results[i] = text
            with self._lock:
                self.records.append(records[i])
                if records[i].error is None and on_result is not None:
                    on_result(i, text, records[i])
            bar.update(1)

        def first_pass(i: int, req, repeat: int):
            endpoint, fit, max_gen, params = self.fit_request(req, repeat)
            rec = self.new_record(req.task_name, req.doc_id, endpoint, fit, max_gen)
            records[i] = rec
            text = self._send(GenRequest(req.task_name, req.doc_id, endpoint, fit, params), rec)
            if rec.error is None and self.spec_for(req.task_name).followup is not None:
                rec.first_response = text
                fit2, params2 = self.followup_request(req, text)
                text = self._send(GenRequest(req.task_name, req.doc_id, endpoint, fit2, params2), rec)
            return i, text

        seen: dict[tuple, int] = {}
        repeats = []
        for req in requests:  # the k-th copy of a repeated request (samples per item) is repeat k
            key = (req.task_name, req.doc_id)
            repeats.append(seen.get(key, 0))
            seen[key] = repeats[-1] + 1
        try:
            self._dispatch(len(requests), lambda i: first_pass(i, requests[i], repeats[i]), finish)
        finally:
            bar.close()
        return results

    def _dispatch(self, n: int, job, deliver) -> None:
        """Run job(i) for i < n on daemon threads (`concurrency` per server), and call deliver(*result)
        on this (the main) thread as each result arrives.

        The main thread never blocks for longer than 0.2 s, and checks the stop flag each time
        (harness/interrupt.py), so a signal ends the dispatch even if a library swallowed its
        KeyboardInterrupt. However it ends (a stop, an error in a job or in `deliver`), queued
        requests are never sent, results that already arrived are delivered (so saved) before the
        exception goes on, and requests in flight are abandoned: daemon threads never hold the
        process's exit for an HTTP timeout. Deliveries are deferred sections: a signal waits for
        the answer being saved, then stops the run."""
        todo: queue.Queue = queue.Queue()
        for i in range(n):
            todo.put(i)
        done: queue.Queue = queue.Queue()
        self._stop.clear()

        def worker():
            while not self._stop.is_set() and not interrupt.requested():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put(job(i))
                except BaseException as e:  # noqa: BLE001 - handed to the main thread
                    done.put(e)

        for _ in range(min(self.concurrency * len(self.pool.endpoints), n)):
            threading.Thread(target=worker, daemon=True).start()
        received = 0
        try:
            while received < n:
                interrupt.check()
                try:
                    item = done.get(timeout=0.2)
                except queue.Empty:
                    continue
                received += 1
                if isinstance(item, BaseException):
                    raise item
                with interrupt.deferred():
                    deliver(*item)
        finally:
            self._stop.set()
            if received < n:  # stopped early: what arrived before the stop is still saved
                in_flight = sum(e.outstanding for e in self.pool.endpoints)
                saved = self._deliver_arrived(done, deliver)
                self._log_stop(received + saved, in_flight, todo.qsize())

    def _log_stop(self, delivered: int, in_flight: int, queued: int) -> None:
        stop = interrupt.stopped_at()
        if stop is None:
            return
        last = (f"the last {stop - self.last_sent_at:.3f} s before the stop" if self.last_sent_at is not None
                else "none")
        interrupt.log(f"requests: {self.n_sent} sent ({last}; none after it), {delivered} answers delivered and "
                      f"saved, {in_flight} in flight abandoned, {queued} queued never sent")

    @staticmethod
    def _deliver_arrived(done: queue.Queue, deliver) -> int:
        """Deliver the results that arrived; how many."""
        delivered = 0
        with interrupt.deferred():
            while True:
                try:
                    item = done.get_nowait()
                except queue.Empty:
                    return delivered
                if not isinstance(item, BaseException):
                    with contextlib.suppress(Exception):  # the error that stopped us is already on its way
                        deliver(*item)
                        delivered += 1

    # HTTP --------------------------------------------------------------------------------

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self._requests.Session()
        return s

    def _payload(self, g: GenRequest, ep: Endpoint) -> tuple[str, dict]:
        body = {"model": ep.model, **g.gen}
        if g.endpoint == "chat":
            spec = self.spec_for(g.task)  # the same prefix and template kwargs the fitter counted
            body["messages"] = list(spec.chat_prefix or []) + [{"role": "user", "content": g.fit.text}]
            if spec.chat_template_kwargs:
                body["chat_template_kwargs"] = spec.chat_template_kwargs
            return f"{ep.root}/v1/chat/completions", body
        body["prompt"] = g.fit.text
        return f"{ep.root}/v1/completions", body

    def _server_alive(self, ep: Endpoint) -> bool:
        try:
            return self._session().get(f"{ep.root}/health", timeout=5, headers=self.headers).status_code == 200
        except self._requests.RequestException:
            return False

    def _count_sent(self, at: float) -> None:
        """Tally a request as it is admitted. Runs under the stop's lock (`interrupt.admit`), which
        serialises every admission, so the tally is complete once the stop is seen; it takes no
        other lock (the signal handler waits for that one, maybe on a thread holding another)."""
        self.n_sent += 1
        self.last_sent_at = max(self.last_sent_at or at, at)

    def _stopped(self) -> bool:
        return self._stop.is_set() or interrupt.requested()

    def _send(self, g: GenRequest, rec: RequestRecord) -> str:
        """The answer, with retries (`_attempt` says which failures are worth one); fills `rec`
        (tokens, finish reason, attempts, error). An answer is never asked for twice once it has arrived."""
        t0 = time.monotonic()
        retrying = tenacity.Retrying(  # retries only what `_attempt` asks for by raising TryAgain
            stop=tenacity.stop_after_attempt(self.max_retries + 1), retry=tenacity.retry_never,
            # exponential back-off, jittered so that requests that failed together do not retry together
            wait=lambda state: self.backoff_s * 2 ** (state.attempt_number - 1) * random.uniform(0.5, 1.5),
            sleep=self._stop.wait,  # a stop ends the wait at once; the next attempt sees it
            retry_error_callback=lambda state: None)  # retries ran out: no answer; rec.error is the last failure
        text = retrying(self._attempt, g, rec) if self.max_retries >= 0 else None
        rec.latency_s = (rec.latency_s or 0.0) + time.monotonic() - t0
        if text is None:
            rec.error = rec.error or "not sent"  # never an answer that was not received
        return text or ""

    def _attempt(self, g: GenRequest, rec: RequestRecord) -> str | None:
        """One attempt, to the live server with the fewest requests outstanding: the answer; None when
        another cannot help (a 4xx, the run stopped, every server out); TryAgain when one may. A server
        that fails to connect and no longer answers /health is taken out and the request goes to
        another at once, within this attempt. `rec.error`/`rec.status` keep the latest failure."""
        while (ep := self.pool.acquire(self._stopped)) is not None:  # None once stopped, or every server out
            url, body = self._payload(g, ep)
            if self._stop.is_set() or interrupt.admit(self._count_sent) is None:
                self.pool.release(ep, answered=False, sent=False)  # the run stopped after the server was chosen
                break
            rec.attempts += 1
            answered = False
            try:
                r = self._session().post(url, json=body, headers=self.headers, timeout=self.timeout_s)
                if r.status_code != 200:
                    rec.error, rec.status = f"HTTP {r.status_code}: {r.text[:300]}", r.status_code
                    if r.status_code in RETRYABLE_STATUS:
                        raise tenacity.TryAgain
                    return None
                try:
                    data = r.json()
                    text, finish = parse_answer(data, g.endpoint)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    # a 200 that is not an answer: the request's error, like any other; retried,
                    # since a proxy or an overloaded server can send one in passing
                    rec.error, rec.status = f"malformed answer ({type(e).__name__}: {str(e)[:100]}): {r.text[:200]!r}", None
                    raise tenacity.TryAgain from e
                answered = True
                rec.error = rec.status = None
                rec.finish_reason = finish
                rec.completion_tokens = (rec.completion_tokens or 0) + ((data.get("usage") or {}).get("completion_tokens") or 0)
                return text
            except (self._requests.ConnectionError, self._requests.Timeout) as e:
                rec.error, rec.status = f"{type(e).__name__}: {str(e)[:300]}", None
                if self._server_alive(ep):
                    raise tenacity.TryAgain from e
                self.pool.take_out(ep, rec.error[:200])  # and on to another server, not counted as a retry
            finally:
                self.pool.release(ep, answered)
        rec.error = rec.error or ("cancelled (the run was interrupted)" if self._stopped() else
                                  "server unreachable (an earlier request found every server down)")
        return None


def parse_answer(data: dict, endpoint: str) -> tuple[str, str | None]:
    """(text, finish reason) of an OpenAI-style completion or chat answer; raises on other shapes."""
    choice = data["choices"][0]
    if endpoint == "chat":
        msg = choice["message"]  # a reasoning parser returns the thinking separately
        text = join_reasoning(msg.get("content"), msg.get("reasoning_content") or msg.get("reasoning"))
    else:
        text = choice["text"]
    if not isinstance(text, str):
        raise TypeError(f"answer text is {type(text).__name__}")
    return text, choice.get("finish_reason")
