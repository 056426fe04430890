"""`--backend hf`: lm-eval's `hf` backend (in-process transformers on CPU) with the server
backend's prompt fitting, chat-template handling, request records and result streaming
(harness/backends/lm.py), so both backends see identical prompts.

Its own module because importing lm-eval's HFLM imports torch and transformers, which the server
backend never needs.
"""

from __future__ import annotations

import copy

from lm_eval.models.huggingface import HFLM

from harness.backends.fitting import PromptFitter
from harness.backends.lm import EndpointMixin, OnResult, RequestRecord, TaskSpec


class FittedHFLM(EndpointMixin, HFLM):
    """lm-eval's HFLM on `model_path` (float32, CPU) whose prompts are fitted to `max_model_len`;
    chat tasks get the chat template applied here."""

    def __init__(self, model_path: str, tokenizer, max_model_len: int, task_specs: dict[str, TaskSpec],
                 batch_size: int = 1, seed: int = 1234):
        super().__init__(pretrained=model_path, tokenizer=tokenizer, max_length=max_model_len,
                         batch_size=batch_size, device="cpu", dtype="float32")
        self.fitter = PromptFitter(tokenizer, max_model_len)
        self.task_specs = dict(task_specs)
        self.seed = seed
        self.records: list[RequestRecord] = []
        self.n_sent = 0

    def _generate_fitted(self, requests, fits, disable_tqdm):
        fitted = []
        for req, (endpoint, fit, _max_gen, _params) in zip(requests, fits):
            new = copy.copy(req)
            spec = self.spec_for(req.task_name)
            new.arguments = (self.fitter.render(fit.text, endpoint == "chat", spec.chat_template_kwargs,
                                                spec.chat_prefix), req.args[1])
            fitted.append(new)
        self.n_sent += len(fitted)
        return HFLM.generate_until(self, fitted, disable_tqdm=disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False, on_result: OnResult | None = None):
        fits = [self.fit_request(req) for req in requests]
        recs = [self.new_record(req.task_name, req.doc_id, e, f, m) for req, (e, f, m, _) in zip(requests, fits)]
        texts = self._generate_fitted(requests, fits, disable_tqdm)
        two_pass = [i for i, req in enumerate(requests) if self.spec_for(req.task_name).followup is not None]
        if two_pass:
            second, second_fits = [], []
            for i in two_pass:
                recs[i].first_response = texts[i]
                fit2, _ = self.followup_request(requests[i], texts[i])
                req2 = copy.copy(requests[i])
                gen2 = {**requests[i].args[1], "max_gen_toks": self.spec_for(requests[i].task_name).followup_max_gen_toks}
                req2.arguments = (requests[i].args[0], gen2)
                second.append(req2)
                second_fits.append((recs[i].endpoint, fit2, gen2["max_gen_toks"], {}))
            for i, text in zip(two_pass, self._generate_fitted(second, second_fits, disable_tqdm)):
                texts[i] = text
        self.records.extend(recs)
        if on_result is not None:  # in-process generation has no per-request failures
            for i, (text, rec) in enumerate(zip(texts, recs)):
                on_result(i, text, rec)
        return texts
