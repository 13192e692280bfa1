"""``--metric judge``: the output contract, the OpenAI-compatible and local backends, the cache.

The URL backend is tested against a stand-in server on 127.0.0.1 (http.server
in a thread, ephemeral port, shut down by the fixture and by a timer) that
answers with canned, deterministic scores: an answer containing "cancel"
scores 2 on accuracy, anything else 9. The local backend is the tiny demo
Llama judging its own adapters' answers (plumbing, not quality).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from adaptergate.errors import EvaluationError, InvalidInputError, UsageError
from adaptergate.metrics.judge import (
    DEFAULT_CRITERIA,
    Criterion,
    JudgeOutputError,
    JudgeRequest,
    JudgeSettings,
    UrlJudge,
    backend_factory,
    chat_endpoint,
    check_criteria,
    judge_answers,
    load_criteria,
    output_schema,
    pairwise_swapped,
    parse_judgement,
    public_url,
    weighted_score,
)
from adaptergate.scoring.model import query_hash

NAMES = [c.name for c in DEFAULT_CRITERIA]


def _obj(**over):
    scores = {n: 7 for n in NAMES}
    scores.update(over)
    return {"scores": scores, "reasoning": "fine"}


# --------------------------------------------------------------------------- (c) parsing


def test_a_valid_reply_parses():
    j = parse_judgement(json.dumps(_obj(accuracy=10, style=1)), DEFAULT_CRITERIA)
    assert j.scores == ({**{n: 7 for n in NAMES}, "accuracy": 10, "style": 1},)
    assert j.reasoning == "fine"


@pytest.mark.parametrize(
    "reply, why",
    [
        ({"scores": {n: 7 for n in NAMES if n != "style"}, "reasoning": "x"}, "scores.style is missing"),
        ({"scores": {**{n: 7 for n in NAMES}, "tone": 5}, "reasoning": "x"}, "unexpected key scores.tone"),
        ({**_obj(), "verdict": "ok"}, "unexpected key verdict"),
        (_obj(accuracy=11), "scores.accuracy is 11, outside 1-10"),
        (_obj(accuracy=0), "scores.accuracy is 0, outside 1-10"),
        (_obj(accuracy=7.0), "scores.accuracy is 7.0, not an integer"),
        (_obj(accuracy=7.5), "not an integer"),
        (_obj(accuracy="7"), "scores.accuracy is '7', not an integer"),
        (_obj(accuracy=True), "not an integer"),
        ({"scores": {n: 7 for n in NAMES}}, "reasoning is missing"),
        ({"scores": {n: 7 for n in NAMES}, "reasoning": 3}, "reasoning must be a string"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_contract_violations_are_named(reply, why):
    with pytest.raises(JudgeOutputError, match=why.replace(".", r"\.")):
        parse_judgement(json.dumps(reply), DEFAULT_CRITERIA)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "empty"),
        ("Here you go: " + json.dumps(_obj()), "not one JSON object"),
        (json.dumps(_obj()) + " I hope this helps", "not one JSON object"),
        ('{"scores": {"accuracy": 7, "accuracy": 8}, "reasoning": ""}', "appears twice"),
        ("```json\n" + json.dumps(_obj()), "fence"),
        (None, "no text content"),
    ],
)
def test_text_around_the_object_is_refused(text, why):
    with pytest.raises(JudgeOutputError, match=why):
        parse_judgement(text, DEFAULT_CRITERIA)


@pytest.mark.parametrize("fence", ["```json\n{}\n```", "```\n{}\n```", "  ```JSON\n{}\n```\n"])
def test_one_enclosing_code_fence_is_accepted(fence):
    # Decided: one enclosing Markdown fence is tolerated (models add it even in JSON mode);
    # anything else around the object is refused.
    text = fence.replace("{}", json.dumps(_obj()))
    assert parse_judgement(text, DEFAULT_CRITERIA).scores[0]["accuracy"] == 7


def test_pairwise_replies_need_both_sides():
    crit = DEFAULT_CRITERIA[:2]
    side = {"accuracy": 3, "relevance": 9}
    j = parse_judgement(json.dumps({"scores": {"A": side, "B": {**side, "accuracy": 8}}, "reasoning": ""}),
                        crit, pairwise=True)
    assert j.scores == (side, {**side, "accuracy": 8})
    with pytest.raises(JudgeOutputError, match="scores.B is missing"):
        parse_judgement(json.dumps({"scores": {"A": side}, "reasoning": ""}), crit, pairwise=True)
    with pytest.raises(JudgeOutputError, match="scores.A.relevance is missing"):
        parse_judgement(json.dumps({"scores": {"A": {"accuracy": 3}, "B": side}, "reasoning": ""}),
                        crit, pairwise=True)


def test_weighted_score_maps_1_to_0_and_10_to_1():
    assert weighted_score({n: 1 for n in NAMES}, DEFAULT_CRITERIA) == 0.0
    assert weighted_score({n: 10 for n in NAMES}, DEFAULT_CRITERIA) == 1.0
    # accuracy weighs 2 of 7: accuracy 1, everything else 10
    s = weighted_score({**{n: 10 for n in NAMES}, "accuracy": 1}, DEFAULT_CRITERIA)
    assert s == pytest.approx(5 / 7)
    # "pass at 70" on 0-100 is 0.70 here
    assert weighted_score({n: 7.3 for n in NAMES}, DEFAULT_CRITERIA) == pytest.approx(0.7)


def test_criteria_files_json_and_yaml(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps([{"name": "tone", "weight": 2, "rubric": "polite"}, {"name": "facts", "rubric": "true"}]))
    assert load_criteria(j) == (Criterion("tone", 2.0, "polite"), Criterion("facts", 1.0, "true"))
    y = tmp_path / "c.yaml"
    y.write_text("criteria:\n  - name: tone\n    weight: 1.5\n    rubric: |\n      polite and\n      brief\n")
    assert load_criteria(y) == (Criterion("tone", 1.5, "polite and brief"),)
    assert load_criteria(None) == DEFAULT_CRITERIA


@pytest.mark.parametrize(
    "raw, why",
    [
        ([], "non-empty list"),
        ([{"name": "a", "weight": 1}], "needs a rubric"),
        ([{"name": "a", "weight": 0, "rubric": "r"}], "finite number > 0"),
        ([{"name": "a", "weight": float("nan"), "rubric": "r"}], "finite number > 0"),
        ([{"name": "a b", "rubric": "r"}], "name 'a b'"),
        ([{"name": "a", "rubric": "r"}, {"name": "a", "rubric": "s"}], "given twice"),
        ([{"name": "a", "rubric": "r", "scale": 5}], "unknown key"),
    ],
)
def test_bad_criteria_are_invalid_input(raw, why):
    with pytest.raises(InvalidInputError, match=why):
        check_criteria(raw, "c.json")


def test_settings_need_exactly_one_backend():
    with pytest.raises(UsageError, match="exactly one judge"):
        JudgeSettings()
    with pytest.raises(UsageError, match="exactly one judge"):
        JudgeSettings(model="m", url="http://x", name="n")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--judge-name"):
        JudgeSettings(url="http://127.0.0.1:1")


def test_endpoint_forms():
    assert chat_endpoint("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_endpoint("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_endpoint("http://h/x/v1/chat/completions") == "http://h/x/v1/chat/completions"


def test_reports_never_show_url_credentials():
    assert public_url("https://user:sk-secret@judge.example:8443/v1/chat/completions?key=k#x") == (
        "https://judge.example:8443/v1/chat/completions"
    )
    s = JudgeSettings(url="https://u:p@judge.example/v1", name="m")
    assert "p@" not in UrlJudge(s).label and UrlJudge(s).label == "m at https://judge.example/v1/chat/completions"


def test_schema_is_strict():
    schema = output_schema(DEFAULT_CRITERIA)
    scores = schema["properties"]["scores"]
    assert scores["required"] == NAMES and scores["additionalProperties"] is False
    assert scores["properties"]["accuracy"] == {"type": "integer", "enum": list(range(1, 11))}
    assert schema["additionalProperties"] is False and schema["required"] == ["scores", "reasoning"]


# --------------------------------------------------------------------------- (d) pairwise order


def test_pairwise_order_is_deterministic_and_balanced():
    hashes = [query_hash({"id": f"q{i}", "prompt": f"question {i}"}) for i in range(200)]
    first = [pairwise_swapped(h) for h in hashes]
    assert first == [pairwise_swapped(h) for h in hashes]  # same query, same order, every run
    assert 80 <= sum(first) <= 120  # about half show the candidate first
    assert first != [first[0]] * 200


# --------------------------------------------------------------------------- the stand-in server


def canned_scores(answer: str) -> dict[str, int]:
    bad = "cancel" in answer
    return {"accuracy": 2 if bad else 9, "relevance": 5 if bad else 8, "style": 7, "completeness": 8,
            "coherence": 8}


def _between(text: str, start: str, end: str | None) -> str:
    tail = text.split(start, 1)[1]
    return tail.split(end, 1)[0] if end else tail


class StandIn:
    """An OpenAI-compatible /v1/chat/completions stand-in with scripted behaviours."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.mode = "canned"
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                status, reply = outer.answer(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.guard = threading.Timer(120, self.server.shutdown)  # stops by itself whatever happens
        self.guard.daemon = True

    def start(self) -> "StandIn":
        self.thread.start()
        self.guard.start()
        return self

    def stop(self) -> None:
        self.guard.cancel()
        self.server.shutdown()
        self.server.server_close()

    def content(self, body: dict) -> str:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if "Answer A:" in user:
            a = _between(user, "Answer A:\n", "\n\nAnswer B:")
            b = _between(user, "Answer B:\n", None)
            return json.dumps({"scores": {"A": canned_scores(a), "B": canned_scores(b)},
                               "reasoning": "A says cancel" if "cancel" in a else "B says cancel"
                               if "cancel" in b else "both fine"})
        answer = _between(user, "Answer to grade:\n", None)
        reason = "It offers to cancel instead of refunding." if "cancel" in answer else "Correct and polite."
        return json.dumps({"scores": canned_scores(answer), "reasoning": reason})

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        repaired = any("was not valid" in m["content"] for m in body["messages"] if m["role"] == "user")
        mode = self.mode
        if mode == "no-json-schema" and body.get("response_format", {}).get("type") == "json_schema":
            return 400, {"error": {"message": "response_format json_schema is not supported"}}
        if mode == "always-malformed" or (mode == "malformed-once" and not repaired):
            text = json.dumps({"scores": {"accuracy": 7}, "reasoning": "partial"})
        elif mode == "server-error":
            return 503, {"error": {"message": "overloaded"}}
        else:
            text = self.content(body)
        return 200, {"id": "x", "object": "chat.completion",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}]}


@pytest.fixture
def standin(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = StandIn().start()
    try:
        yield server
    finally:
        server.stop()


def _url_settings(server: StandIn, **kw) -> JudgeSettings:
    return JudgeSettings(url=server.url, name="judge-7b", concurrency=kw.pop("concurrency", 1), **kw)


def _judge(server, tmp_path, base, cand, **kw):
    settings = _url_settings(server, **kw)
    ids = [f"q{i}" for i in range(len(base))]
    hashes = [query_hash({"id": q}) for q in ids]
    return judge_answers(
        settings, lambda i: (ids[i], f"prompt {i}", "start refund"), hashes, base, cand,
        cache_root=tmp_path, backend_factory=backend_factory(settings, None),
    )


# --------------------------------------------------------------------------- (b) URL backend


def test_url_judge_scores_and_caches(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "sk-test")
    base = ["start refund"] * 4
    cand = ["start refund", "cancel order", "cancel order", "start refund now"]
    out = _judge(standin, tmp_path, base, cand, api_key_env="JUDGE_KEY_FOR_TEST", concurrency=3)
    b, c = out.scores()
    assert np.all(b == b[0]) and c[1] < b[1] and c[0] == b[0]
    assert [s["accuracy"] for s in out.candidate] == [9, 2, 2, 9]
    summary = out.summary()
    acc = summary.criteria[0]
    assert acc.name == "accuracy" and acc.delta == pytest.approx(-3.5) and acc.n_worse == 2
    assert summary.criteria[2].delta == 0  # style: unchanged
    # q0's identical answers are judged once: 4 baseline + 3 other candidate answers
    assert out.stats.judged == 7 and len(standin.requests) == 7
    assert all(h.get("Authorization") == "Bearer sk-test" for h in standin.headers)
    body = standin.requests[0]
    assert body["model"] == "judge-7b" and body["temperature"] == 0
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == output_schema(DEFAULT_CRITERIA)
    system = body["messages"][0]["content"]
    assert all(c.rubric in system for c in DEFAULT_CRITERIA) and "accuracy (weight 2)" in system
    assert "Reference answer:\nstart refund" in body["messages"][1]["content"]

    # same answers again: everything from the cache, no request
    again = _judge(standin, tmp_path, base, cand)
    assert again.stats.judged == 0 and again.stats.cached == 7 and len(standin.requests) == 7
    assert again.candidate == out.candidate
    # a new candidate answer: only that one is judged
    _judge(standin, tmp_path, base, [*cand[:3], "refund started"])
    assert len(standin.requests) == 8


def test_a_malformed_reply_is_repaired(standin, tmp_path):
    standin.mode = "malformed-once"
    out = _judge(standin, tmp_path, ["start refund"], ["cancel order"])
    assert out.candidate[0]["accuracy"] == 2 and out.stats.repairs == 2
    first, second = standin.requests[0], standin.requests[1]
    repair = second["messages"][-1]
    assert repair["role"] == "user" and "scores.relevance is missing" in repair["content"]
    assert second["messages"][-2] == {"role": "assistant", "content": json.dumps(
        {"scores": {"accuracy": 7}, "reasoning": "partial"})}
    assert second["messages"][:2] == first["messages"]


def test_always_malformed_fails_naming_the_query(standin, tmp_path):
    standin.mode = "always-malformed"
    with pytest.raises(EvaluationError) as info:
        _judge(standin, tmp_path, ["a"], ["b"], retries=1)
    msg = info.value.message
    assert "query 'q0'" in msg and "after 2 attempts" in msg and "scores.relevance is missing" in msg
    assert "\n" not in msg
    assert len(standin.requests) == 2  # never a silent 0: it stopped at the first query


def test_json_schema_rejected_falls_back_to_json_object(standin, tmp_path):
    standin.mode = "no-json-schema"
    out = _judge(standin, tmp_path, ["start refund"], ["cancel order"])
    assert out.candidate[0]["accuracy"] == 2
    kinds = [r["response_format"]["type"] for r in standin.requests]
    assert kinds[0] == "json_schema" and set(kinds[1:]) == {"json_object"}


def test_server_errors_are_retried_then_fail(standin, tmp_path):
    standin.mode = "server-error"
    settings = _url_settings(standin, retries=2)
    judge = UrlJudge(settings)
    judge._sleep = lambda s: None
    with pytest.raises(EvaluationError, match=r"failed for query 'q9' \(HTTP 503 after 3 attempts\)"):
        judge.judge_one(JudgeRequest("q9", "p", None, ("a",)))


def test_pairwise_maps_a_and_b_back(standin, tmp_path):
    n = 12
    base = ["start refund"] * n
    cand = ["cancel order"] * n
    out = _judge(standin, tmp_path, base, cand, pairwise=True)
    assert out.swapped is not None and 0 < sum(out.swapped) < n
    assert all(s["accuracy"] == 9 for s in out.baseline) and all(s["accuracy"] == 2 for s in out.candidate)
    assert len(standin.requests) == n  # one side-by-side judgement per query
    for swapped, body in zip(out.swapped, standin.requests):
        user = body["messages"][1]["content"]
        first = _between(user, "Answer A:\n", "\n\nAnswer B:")
        assert first == ("cancel order" if swapped else "start refund")
        assert body["response_format"]["json_schema"]["schema"]["properties"]["scores"]["required"] == ["A", "B"]
    assert out.summary().n_candidate_first == sum(out.swapped)


# --------------------------------------------------------------------------- constrained decoding


def test_constrained_choice_lets_10_beat_1():
    """The trie of " 1," .. " 10,": after "1" the model may continue with "0" (10) or "," (1)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from adaptergate.metrics.judge import LocalJudge
    from adaptergate.demos.tinymodel import build_tokenizer

    tok = build_tokenizer(['{"scores": {"accuracy": 1, 2, 3, 4, 5, 6, 7, 8, 9, 0}', "reasoning"])
    prefer = [tok.convert_tokens_to_ids("1"), tok.convert_tokens_to_ids("0")]

    class Model:
        device = "cpu"

        def __call__(self, input_ids, attention_mask):
            logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], len(tok))
            for r in range(input_ids.shape[0]):
                last = int(input_ids[r, -1])
                # "1" first; after "1", "0" over ","; otherwise no preference
                logits[r, -1, prefer[1] if last == prefer[0] else prefer[0]] = 5.0
            return type("Out", (), {"logits": logits})

    judge = LocalJudge.__new__(LocalJudge)
    judge.tokenizer, judge.model, judge.torch = tok, Model(), torch
    judge._chat, judge._unk = False, tok.unk_token_id
    from adaptergate.metrics.judge import JudgeStats

    judge.stats = JudgeStats()
    picks = judge._choose_scores(['{"scores": {"accuracy":'], [","])
    assert picks == [(10, " ")]
    assert judge.stats.calls == 2  # one forward at "1..9", one at "1" -> "0" or ","; the rest is forced


# --------------------------------------------------------------------------- end to end (tiny model)


def _gate_argv(assets, cache, *extra):
    return [
        "gate", "--tenant", "demo", "--holdout", str(assets.holdout), "--base-model", str(assets.base_dir),
        "--baseline-adapter", str(assets.baseline_adapter), "--candidate-adapter", str(assets.candidate_adapter),
        "--metric", "judge", "--sample", "40", "--cache-dir", str(cache), "--format", "json", *extra,
    ]


@pytest.mark.slow
def test_tiny_model_as_its_own_judge(demo_assets, tmp_path, capsys, monkeypatch):
    from adaptergate.cli.app import main
    from adaptergate.models import GateDecision
    from adaptergate.report import render

    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    argv = _gate_argv(demo_assets, tmp_path / "cache", "--judge-model", str(demo_assets.base_dir))
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in err
    d = json.loads(out)
    info = d["evaluation"]["judge"]
    assert info["backend"] == "model" and info["fallbacks"] == 0 and info["judged"] > 0 and info["cached"] == 0
    # the tiny model knows 64 positions: every judge prompt (rubrics included) is longer, and the report says so
    assert info["context"] == 64 and info["over_context"] == info["judged"]
    (warning,) = [w for w in d["warnings"] if w["code"] == "judge-over-context"]
    assert warning["message"].startswith(f"{info['judged']} judge prompt(s) were longer than the judge model's")
    assert d["evaluation"]["metric"] == "judge" and d["evaluation"]["mode"] == "generate"
    for row in d["per_query"]:  # every judgement is a valid object: five integers 1..10
        for side in ("judge_baseline", "judge_candidate"):
            assert set(row[side]) == set(NAMES) and all(1 <= v <= 10 for v in row[side].values())
        expect = weighted_score(row["judge_candidate"], DEFAULT_CRITERIA)
        assert row["score_candidate"] == pytest.approx(expect)
    decision = GateDecision.model_validate(d)
    assert decision.judge is not None and [c.name for c in decision.judge.criteria] == NAMES
    md = render(decision, "markdown")
    assert md.index("### Evidence") < md.index("### ⚖️ Judge: per-criterion scores")
    assert "| accuracy | 2 |" in md

    # second run, same adapters: answers and judgements all come from the caches
    code2 = main(argv)
    d2 = json.loads(capsys.readouterr().out)
    assert code2 == code
    assert d2["evaluation"]["judge"]["judged"] == 0 and d2["evaluation"]["judge"]["calls"] == 0
    assert d2["evaluation"]["judge"]["cached"] == info["judged"]
    assert d2["evaluation"]["cached_baseline_queries"] == 40
    assert [r["score_candidate"] for r in d2["per_query"]] == [r["score_candidate"] for r in d["per_query"]]


@pytest.mark.slow
def test_a_judge_whose_context_holds_the_prompts_brings_no_warning(demo_assets, tmp_path, capsys, monkeypatch):
    import shutil

    from adaptergate.cli.app import main

    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    judge_dir = tmp_path / "long-context-judge"
    shutil.copytree(demo_assets.base_dir, judge_dir)
    config = json.loads((judge_dir / "config.json").read_text())
    config["max_position_embeddings"] = 4096  # RoPE: same weights, a declared window that fits
    (judge_dir / "config.json").write_text(json.dumps(config))
    argv = _gate_argv(demo_assets, tmp_path / "cache", "--judge-model", str(judge_dir))
    argv[argv.index("--sample") + 1] = "20"
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    d = json.loads(out)
    info = d["evaluation"]["judge"]
    assert info["judged"] > 0 and info["cached"] == 0  # the judge really ran
    assert info["context"] == 4096 and info["over_context"] == 0
    assert not [w for w in d["warnings"] if w["code"] == "judge-over-context"]


@pytest.mark.slow
def test_url_judge_end_to_end_rejects_on_accuracy(demo_assets, standin, tmp_path, capsys, monkeypatch):
    from adaptergate.cli.app import main
    from adaptergate.models import GateDecision
    from adaptergate.report import render

    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    code = main(_gate_argv(demo_assets, tmp_path / "c", "--judge-url", standin.url, "--judge-name", "judge-7b",
                           "--slice-epsilon", "0.1"))
    out, err = capsys.readouterr()
    d = json.loads(out)
    assert code == 1 and d["verdict"] == "FAIL", err
    assert d["driver_slice_tag"] == "intent=refund"
    deltas = {c["name"]: c["delta"] for c in d["judge"]["criteria"]}
    assert deltas["accuracy"] < -1 and deltas["relevance"] < 0 and deltas["style"] == 0
    ex = d["examples"][0]
    assert "cancel" in ex["candidate_output"] and ex["judge_scores_candidate"]["accuracy"] == 2
    assert ex["judge_scores_baseline"]["accuracy"] == 9
    assert ex["judge_reasoning"] == "It offers to cancel instead of refunding."
    md = render(GateDecision.model_validate(d), "pr-comment")
    assert md.index("### Evidence") < md.index("### ⚖️ Judge") < md.index("### 🎯 Driver slice")
    acc = next(c for c in d["judge"]["criteria"] if c["name"] == "accuracy")
    row = f"| accuracy | 2 | {acc['baseline']:.2f} | {acc['candidate']:.2f} | {acc['delta']:+.2f} |"
    assert row in md and "**Largest drop**: accuracy" in md
    assert "  - judge: accuracy 9 → 2, relevance 8 → 5, style 7 → 7" in md
    assert "  - judge's reasoning: It offers to cancel instead of refunding." in md


@pytest.mark.slow
def test_always_malformed_judge_exits_3_with_one_line(demo_assets, standin, tmp_path, capsys, monkeypatch):
    from adaptergate.cli.app import main

    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    standin.mode = "always-malformed"
    code = main(_gate_argv(demo_assets, tmp_path / "c", "--judge-url", standin.url, "--judge-name", "j",
                           "--judge-retries", "1", "--judge-concurrency", "1"))
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("adaptergate: error: judge output for query '")
    assert "still malformed after 2 attempts" in lines[0]


@pytest.mark.parametrize(
    "extra, why",
    [
        (["--metric", "judge"], "exactly one judge"),
        (["--metric", "judge", "--judge-url", "http://127.0.0.1:9"], "--judge-name"),
        (["--metric", "exact", "--judge-model", "m"], "--judge-model goes with --metric judge"),
        (["--metric", "judge", "--judge-url", "ftp://x", "--judge-name", "n"], "http"),
    ],
)
def test_cli_usage_errors(tmp_path, capsys, extra, why):
    from adaptergate.cli.app import main

    h = tmp_path / "h.jsonl"
    h.write_text('{"id": "q", "prompt": "p"}\n')
    argv = ["gate", "--tenant", "t", "--holdout", str(h), "--base-model", str(tmp_path),
            "--baseline-adapter", str(tmp_path), "--candidate-adapter", str(tmp_path), *extra]
    assert main(argv) == 2
    assert why in capsys.readouterr().err


@pytest.mark.slow
def test_action_inputs_drive_the_judge(demo_assets, standin, tmp_path):
    """The Action's judge-* inputs reach the judge: per-criterion table in the step summary, key from env."""
    import shutil

    from test_action import run_action

    ws = tmp_path / "workspace"
    ws.mkdir()
    shutil.copytree(demo_assets.base_dir, ws / "base")
    shutil.copytree(demo_assets.baseline_adapter, ws / "adapters" / "v1")
    shutil.copytree(demo_assets.candidate_adapter, ws / "adapters" / "v2")
    shutil.copy(demo_assets.holdout, ws / "holdout.jsonl")
    run = run_action(ws, None, {
        "tenant": "demo", "holdout": "holdout.jsonl", "base-model": "base", "baseline-adapter": "adapters/v1",
        "candidate-adapter": "adapters/v2", "metric": "judge", "judge-url": standin.url,
        "judge-name": "judge-7b", "judge-api-key-env": "JUDGE_KEY", "slice-epsilon": "0.1",
        "cache-dir": str(tmp_path / "cache"), "github-token": "",
    }, event={}, event_name="workflow_dispatch", base_with={},
        extra_env={"JUDGE_KEY": "sk-test-123", "ADAPTERGATE_PROGRESS": "0"})
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["driver-slice"] == "intent=refund"
    assert "⚖️ Judge" in run.summary and "| accuracy |" in run.summary
    assert standin.headers and all(h.get("Authorization") == "Bearer sk-test-123" for h in standin.headers)
    # the key is masked (the runner hides every later occurrence) and never printed otherwise
    assert [ln for ln in (run.stdout + run.stderr).splitlines() if "sk-test-123" in ln] == ["::add-mask::sk-test-123"]
    assert "sk-test-123" not in run.summary
