"""Backend wiring that needs no server: config flags reach the request parameters."""


def test_per_request_seed_reaches_the_server_backend(tiny_tokenizer):
    """--per-request-seed must arrive in ServerLM and add a stable seed to sampled requests only."""
    from lm_eval.api.instance import Instance

    from harness.run.config import ClientConfig, EvalConfig
    from harness.run.runner import make_backend
    from harness.run.steps import Target

    def req(temperature):
        gen = {"max_gen_toks": 8, "do_sample": temperature > 0, "temperature": temperature}
        return Instance(request_type="generate_until", doc={}, arguments=("hello", gen), idx=0,
                        metadata=("t", 3, 1))

    for flag in (False, True):
        cfg = EvalConfig(client=ClientConfig(per_request_seed=flag))
        lm = make_backend(cfg, tiny_tokenizer, Target(256, ["http://127.0.0.1:1"], ["m"]), {})
        assert lm.per_request_seed is flag
        sampled = lm.fit_request(req(0.7))[3]
        assert ("seed" in sampled) is flag
        assert "seed" not in lm.fit_request(req(0.0))[3]
        if flag:
            assert sampled["seed"] == lm.fit_request(req(0.7))[3]["seed"]

