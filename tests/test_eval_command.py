"""`coolfusion eval gsm8k`: graded answers, logged as they finish, resumed after a stop.

Most tests drive the real command with a fake engine in place of llama.cpp;
the last one runs the real CLI on the real offline models.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import coolfusion_local.commands.eval as eval_command
from coolfusion_local.cli import main
from coolfusion_local.engine import AnswerDone, AnswerReranked, GenerationStats
from coolfusion_local.engine.lead import Standing
from coolfusion_local.errors import CoolfusionError
from coolfusion_local.measure.eval_report import cut_warning, format_summary_table, summarize
from coolfusion_local.measure.evaluate import DEFAULT_MAX_TOKENS, AnswerLog, AnswerRecord, EvalSettings, plan_jobs, run_jobs
from coolfusion_local.measure.gsm8k import load_problems

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "models.toml"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
MODELS = ["qwen-coder-0.5b", "smollm2-135m"]


class FakeModel:
    decoded_tokens = 0

    def __init__(self, tokens_per_word: int = 1):
        self.tokens_per_word = tokens_per_word

    def tokenize(self, text: bytes) -> list[int]:
        return list(range(len(text.split()) * self.tokens_per_word))


class FakeMember:
    """What eval reads of a member: its model and its claim to lead (engine/lead.py)."""

    def __init__(self, name: str, lead: bool = False):
        self.name = name
        self.model = FakeModel(2 if name == "smollm2-135m" else 1)  # its own vocabulary: other counts
        self.standing = Standing(name, lead=lead)


class FakeEngine:
    """Answers every problem with its gold number, except smollm2 alone, which says 0.

    `interrupt_at`: raise KeyboardInterrupt (a Ctrl-C) on that generate call (1-based).
    """

    def __init__(self, config=None, interrupt_at=None, lead=None):
        self.calls: list[tuple[str, str]] = []
        self.forgotten = 0  # answers started from an empty cache
        self.interrupt_at = interrupt_at
        self.members = {name: FakeMember(name, lead=name == lead) for name in MODELS}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def load(self, names=None):
        return iter(())

    def member(self, name):
        return self.members[name]

    def forget_cached_text(self):
        self.forgotten += 1

    def rerank(self, messages, answers):
        """Picks qwen's own answer, as a real rerank may; costs 3 decoded tokens per model."""
        self.calls.append((messages[-1].content.split("Question: ", 1)[1], "rerank"))
        for member in self.members.values():
            member.model.decoded_tokens += 3
        return AnswerReranked("qwen-coder-0.5b", answers["qwen-coder-0.5b"][0], {}, {})

    def generate(self, messages, *, mode=None, max_tokens=None, stop=None, sampling=None, loop_guard=None, cancel=None):
        question = messages[-1].content.split("Question: ", 1)[1]
        self.calls.append((question, mode))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        number = question.rsplit(" ", 1)[1].rstrip("?")
        fused = not mode.startswith("solo:")
        for name in MODELS if fused else [mode[5:]]:
            self.members[name].model.decoded_tokens += 10
        stats = GenerationStats(
            mode=mode, segments=4, answer_tokens=8, seconds=0.5,
            decisions={"agreed": 2, "scored": 2} if fused else {"solo": 4},
            wins={"qwen-coder-0.5b": 3, "smollm2-135m": 1} if fused else {mode[5:]: 4},
        )
        text = "so #### 0" if mode == "solo:smollm2-135m" else f"so #### {number}"
        yield AnswerDone(text, "eos", stats)


def write_data(path: Path, count: int) -> Path:
    lines = [json.dumps({"question": f"What is {i}?", "answer": f"It is {i}.\n#### {i}"}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fake_engine(monkeypatch):
    """Replace the engine class the command builds; the instances it made are in `made`."""
    made: list[FakeEngine] = []
    settings: dict = {}

    def build(config, **kwargs):
        engine = FakeEngine(config, **settings)
        made.append(engine)
        return engine

    monkeypatch.setattr(eval_command, "FusionEngine", build)
    return made, settings


def run_cli(*argv) -> int:
    return main(["eval", "gsm8k", "--config", str(CONFIG), *argv])


def read_answers(folder: Path) -> list[dict]:
    lines = (folder / "answers.jsonl").read_text(encoding="utf-8").split("\n")  # not splitlines(): see AnswerLog
    return [json.loads(line) for line in lines if line]


def test_eval_grades_every_mode_and_writes_its_files(tmp_path, fake_engine, capsys):
    data = write_data(tmp_path / "d.jsonl", 5)
    out = tmp_path / "run"
    assert run_cli("--data", str(data), "--limit", "3", "--offset", "1", "--modes", "solo,cool", "--out", str(out)) == 0
    summary, headroom = capsys.readouterr().out.split("\n\n")
    rows = [line.split() for line in summary.splitlines()[2:]]
    assert [row[:3] for row in rows] == [
        ["solo:qwen-coder-0.5b", "100.0%", "3"], ["solo:smollm2-135m", "0.0%", "3"], ["cool", "100.0%", "3"]]
    # Two models alone: the headroom table ends the output, and results.json has it too.
    assert headroom.startswith("headroom over 3 problems every member answered alone (lead by the engine's rule")
    assert headroom.rstrip().endswith(
        "verdict: fusing cannot gain over qwen-coder-0.5b on these 3 problems: no other member is right where "
        "qwen-coder-0.5b is wrong; smollm2-135m is 100 points weaker (members more than 10 points apart rarely gain)")
    assert rows[2][6:] == ["50%", "0%", "0%", "0%", "50%", "0%", "qwen-coder-0.5b", "75%,", "smollm2-135m", "25%"]
    assert rows[2][3] == "0%"  # none cut at the limit

    answers = read_answers(out)
    assert [(a["problem"], a["mode"]) for a in answers] == [
        (p, m) for p in (1, 2, 3) for m in ("solo:qwen-coder-0.5b", "solo:smollm2-135m", "cool")]
    assert answers[2]["decoded_tokens"] == {"qwen-coder-0.5b": 10, "smollm2-135m": 10}
    results = json.loads((out / "results.json").read_text())
    assert results["limit"] == 3 and results["offset"] == 1 and results["models"] == MODELS
    cool = results["modes"][2]
    assert cool["mode"] == "cool" and cool["accuracy"] == 100.0 and cool["n"] == 3
    assert cool["decision_shares"]["agreed"] == 50.0
    assert cool["decoded_per_problem"] == {"qwen-coder-0.5b": 10.0, "smollm2-135m": 10.0}
    assert results["headroom"]["lead"] == "qwen-coder-0.5b"
    assert results["headroom"]["partners"] == [{"name": "smollm2-135m", "H": 0, "H_share": 0.0, "R": 3,
                                                "R_share": 100.0, "H_problems": [], "R_problems": [1, 2, 3]}]


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path, fake_engine, capsys):
    made, settings = fake_engine
    data = write_data(tmp_path / "d.jsonl", 3)
    out = tmp_path / "run"
    argv = ["--data", str(data), "--modes", "solo,cool", "--max-tokens", "64", "--out", str(out)]

    settings["interrupt_at"] = 5
    assert run_cli(*argv) == 130
    err = capsys.readouterr().err
    assert "stopped: 4 answers are saved" in err
    resume = next(line for line in err.splitlines() if line.startswith("resume with: "))
    assert f"--out {out}" in resume and "--max-tokens 64" in resume and "--modes solo,cool" in resume
    assert len(read_answers(out)) == 4

    settings["interrupt_at"] = None
    assert run_cli(*argv) == 0
    assert "resuming" in capsys.readouterr().err
    # Only the 5 missing answers were asked for, and the log holds each pair once.
    assert len(made[-1].calls) == 5
    keys = [(a["problem"], a["mode"]) for a in read_answers(out)]
    assert len(keys) == len(set(keys)) == 9

    # A finished run loads no models at all.
    engines_before = len(made)
    assert run_cli(*argv) == 0
    assert len(made) == engines_before


def record(problem=0, mode="cool", question="What is 0?", **extra) -> AnswerRecord:
    fields = dict(problem=problem, mode=mode, question=question, gold="0", extracted="0", correct=True,
                  text="#### 0", stop_reason="eos", seconds=1.0, answer_tokens=5, segments=2,
                  decisions={}, wins={}, decoded_tokens={}, max_tokens=DEFAULT_MAX_TOKENS, prompt="reason-first")
    fields.update(extra)
    return AnswerRecord(**fields)


def test_cool_r_is_composed_from_the_runs_own_fused_and_solo_answers(tmp_path, fake_engine, capsys):
    made, _ = fake_engine
    data = write_data(tmp_path / "d.jsonl", 2)
    out = tmp_path / "run"
    # cool+r listed first still runs after its parts, problem by problem.
    assert run_cli("--data", str(data), "--modes", "cool+r,solo,cool", "--out", str(out)) == 0
    assert [mode for _, mode in made[0].calls] == ["solo:qwen-coder-0.5b", "solo:smollm2-135m", "cool", "rerank"] * 2
    answers = {(a["problem"], a["mode"]): a for a in read_answers(out)}
    composed = answers[(1, "cool+r")]
    assert composed["chosen"] == "qwen-coder-0.5b" and composed["text"] == "so #### 1" and composed["correct"]
    assert composed["composed_from"] == ["cool", "solo:qwen-coder-0.5b", "solo:smollm2-135m"]
    # What Cool+R alone would have spent: its three answers plus the scoring.
    assert composed["seconds"] >= sum(answers[(1, m)]["seconds"] for m in composed["composed_from"])
    assert composed["decoded_tokens"] == {"qwen-coder-0.5b": 23, "smollm2-135m": 23}
    assert composed["answer_tokens"] == 3 and composed["policy"] == answers[(1, "cool")]["policy"]
    assert "lead-veto" in composed["policy"]
    table = capsys.readouterr().out
    assert "cool+r picked" in table and "qwen-coder-0.5b 100%" in table
    modes = {m["mode"]: m for m in json.loads((out / "results.json").read_text())["modes"]}
    assert modes["cool+r"]["chosen"] == {"qwen-coder-0.5b": 2} and modes["cool"]["chosen"] == {}


def test_the_engines_lead_not_the_first_listed_model_is_recorded_and_diffed(tmp_path, fake_engine, capsys):
    # Issue 29 point 10: `lead = true` on the second model; eval diff and Cool+R's token count
    # used the first listed one.
    made, settings = fake_engine
    settings["lead"] = "smollm2-135m"
    out = tmp_path / "run"
    assert run_cli("--data", str(write_data(tmp_path / "d.jsonl", 2)), "--modes", "cool+r,solo,cool",
                   "--out", str(out)) == 0
    assert json.loads((out / "results.json").read_text())["lead"] == "smollm2-135m"
    answers = read_answers(out)
    assert {a["lead"] for a in answers} == {"smollm2-135m"}
    composed = next(a for a in answers if a["mode"] == "cool+r")
    assert composed["text"] == "so #### 0" and composed["answer_tokens"] == 6  # 3 words, in smollm2's tokens
    capsys.readouterr()
    assert main(["eval", "diff", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["against"] == "solo:smollm2-135m"


def test_cool_r_without_its_parts_in_the_run_writes_them_itself(tmp_path, fake_engine):
    made, _ = fake_engine
    out = tmp_path / "run"
    assert run_cli("--data", str(write_data(tmp_path / "d.jsonl", 1)), "--modes", "cool,cool+r", "--out", str(out)) == 0
    assert [mode for _, mode in made[0].calls] == ["cool", "cool+r"]
    assert read_answers(out)[1]["composed_from"] is None
    assert made[0].forgotten == 2  # each answer started from an empty cache


def test_reuse_cache_keeps_the_prefix_between_answers_and_is_recorded(tmp_path, fake_engine):
    made, _ = fake_engine
    out = tmp_path / "run"
    assert run_cli("--data", str(write_data(tmp_path / "d.jsonl", 2)), "--modes", "cool", "--reuse-cache",
                   "--out", str(out)) == 0
    assert made[0].forgotten == 0 and len(made[0].calls) == 2
    assert json.loads((out / "results.json").read_text())["fresh_cache"] is False


def test_plan_skips_finished_pairs_problem_by_problem(tmp_path):
    problems = load_problems(write_data(tmp_path / "d.jsonl", 2))
    settings = EvalSettings(modes=("solo:a", "cool"), models=("a",))
    jobs = plan_jobs(problems, settings, [record(0, "cool"), record(1, "solo:a", "What is 1?")])
    assert [(p.index, mode) for p, mode in jobs] == [(0, "solo:a"), (1, "cool")]


def test_a_folder_from_another_run_is_refused(tmp_path):
    problems = load_problems(write_data(tmp_path / "d.jsonl", 1))
    settings = EvalSettings(modes=("cool",), models=("a",))
    with pytest.raises(CoolfusionError, match="different problem #0"):
        plan_jobs(problems, settings, [record(question="Something else?")])
    with pytest.raises(CoolfusionError, match="resume with --max-tokens 48"):
        plan_jobs(problems, settings, [record(max_tokens=48)])
    with pytest.raises(CoolfusionError, match="resume with --prompt steps"):
        plan_jobs(problems, settings, [record(prompt="steps")])
    ruled = EvalSettings(modes=("cool", "solo:a"), models=("a",), policy="lead-veto lead_margin=0")
    with pytest.raises(CoolfusionError, match="run with the fusion rule mean-ppl"):
        plan_jobs(problems, ruled, [record(policy="mean-ppl")])
    # Solo answers do not depend on the rule.
    assert plan_jobs(problems, ruled, [record(mode="solo:a", policy=None)])[0][1] == "cool"


def test_log_drops_a_half_written_last_line_and_names_a_bad_one(tmp_path):
    log = AnswerLog(tmp_path)
    log.append(record(0))
    with log.path.open("a") as stream:
        stream.write('{"problem": 1, "mo')  # the process died here
    assert [r.problem for r in log.read()] == [0]
    log.append(record(2))
    assert [r.problem for r in log.read()] == [0, 2]

    log.path.write_text(log.path.read_text() + "garbage\n" + json.dumps(vars(record(3))) + "\n")
    with pytest.raises(CoolfusionError, match=r"answers.jsonl:3: not an answer record"):
        log.read()


def test_a_whole_last_record_without_newline_is_kept_and_ended(tmp_path):
    log = AnswerLog(tmp_path)
    log.path.write_text(json.dumps(vars(record(0))))
    assert len(log.read()) == 1
    log.append(record(1))
    assert [r.problem for r in log.read()] == [0, 1]


LINE_SEPARATORS = "\u2028 \u2029 \x85 \x1c \x1d \x1e \r \x0b \x0c"  # every split point of str.splitlines()


def test_answers_holding_unicode_line_separators_resume(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028 & co. raw: they must not end a line."""
    log = AnswerLog(tmp_path)
    log.append(record(0, text=f"#### 0 {LINE_SEPARATORS} end"))
    log.append(record(1))
    records = log.read()
    assert [r.problem for r in records] == [0, 1]
    assert records[0].text == f"#### 0 {LINE_SEPARATORS} end"


def test_a_tail_cut_inside_a_utf8_character_is_dropped_not_a_traceback(tmp_path):
    log = AnswerLog(tmp_path)
    log.append(record(0, text="中文 #### 0"))
    whole = json.dumps(vars(record(1, text="答案是 #### 0")), ensure_ascii=False).encode("utf-8")
    cut = whole.index("答".encode("utf-8")) + 1  # one byte into a three-byte character
    with log.path.open("ab") as stream:
        stream.write(whole[:cut])
    assert [r.problem for r in log.read()] == [0]
    assert log.path.read_bytes().endswith(b"\n")
    log.append(record(1))
    assert [r.problem for r in log.read()] == [0, 1]


def test_a_bad_utf8_line_in_the_middle_is_named(tmp_path):
    log = AnswerLog(tmp_path)
    log.append(record(0))
    with log.path.open("ab") as stream:
        stream.write(b'{"problem": 1, "text": "\xff"}\n')
    log.append(record(2))
    with pytest.raises(CoolfusionError, match=r"answers.jsonl:2: not an answer record \(not UTF-8\)"):
        log.read()


def test_the_half_line_repair_writes_a_new_file_and_renames_it(tmp_path):
    """The repair never truncates the log in place: a crash during it must leave the old file whole."""
    log = AnswerLog(tmp_path)
    log.append(record(0))
    with log.path.open("a") as stream:
        stream.write('{"problem": 1, "mo')
    before = log.path.stat().st_ino
    assert [r.problem for r in log.read()] == [0]
    assert log.path.stat().st_ino != before  # a new file took the old one's name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl"]  # no temp file left


def test_run_jobs_logs_each_answer_before_the_next(tmp_path):
    problems = load_problems(write_data(tmp_path / "d.jsonl", 2))
    settings = EvalSettings(modes=("solo:qwen-coder-0.5b",), models=tuple(MODELS))
    log = AnswerLog(tmp_path / "run")
    seen = []
    engine = FakeEngine()
    run_jobs(engine, plan_jobs(problems, settings, []), settings, log,
             lambda done, rec: seen.append((done, len(log.read()))))
    assert seen == [(1, 1), (2, 2)]
    assert engine.members["smollm2-135m"].model.decoded_tokens == 0


def test_summary_table(tmp_path):
    problems = load_problems(write_data(tmp_path / "d.jsonl", 2))
    records = [
        record(0, "solo:a", answer_tokens=10, seconds=2.0),
        record(1, "solo:a", "What is 1?", correct=False, answer_tokens=20, seconds=4.0),
        record(0, "adaptive", decisions={"agreed": 1, "confident": 2, "scored": 1, "sure": 4}, wins={"a": 7, "b": 1},
               segments=8),
        record(5, "adaptive", "not in this run"),
    ]
    summaries = summarize(records, ["solo:a", "adaptive"], problems)
    assert [(s.mode, s.n, s.correct) for s in summaries] == [("solo:a", 2, 1), ("adaptive", 1, 1)]
    table = format_summary_table(summaries).splitlines()
    assert table[0].split() == ["mode", "accuracy", "n", "cut", "tokens", "s/problem", "agreed", "sure", "number",
                                "vetoed", "scored", "confident", "wins"]
    assert table[2].split() == ["solo:a", "50.0%", "2", "0%", "15", "3.0", "-", "-", "-", "-", "-", "-", "-"]
    assert table[3].split() == ["adaptive", "100.0%", "1", "0%", "5", "1.0", "12%", "50%", "0%", "0%", "12%", "25%",
                                "a", "88%,", "b", "12%"]
    # Every number column is right-aligned, the last decision share included.
    assert table[3].index("25%") + len("25%") == table[0].index("confident") + len("confident")


def test_answers_cut_at_the_limit_are_counted_per_mode_and_warned_about(tmp_path):
    problems = load_problems(write_data(tmp_path / "d.jsonl", 4))
    records = [record(i, "solo:a", f"What is {i}?", stop_reason="max_tokens" if i == 0 else "eos") for i in range(4)]
    records += [record(i, "cool", f"What is {i}?") for i in range(4)]
    summaries = summarize(records, ["solo:a", "cool"], problems)
    assert [(s.cut, s.cut_share) for s in summaries] == [(1, 25.0), (0, 0.0)]
    assert [row.split()[3] for row in format_summary_table(summaries).splitlines()[2:]] == ["25%", "0%"]
    assert summaries[0].as_dict()["cut_share"] == 25.0 and summaries[0].as_dict()["cut_at_limit"] == 1
    warning = cut_warning(summaries, 256)
    assert "--max-tokens 256" in warning and "solo:a 25%" in warning and "cool" not in warning
    assert cut_warning(summaries[1:], 256) is None


def test_the_default_limit_is_recorded_and_a_cut_run_says_so(tmp_path, fake_engine, capsys):
    made, _ = fake_engine
    out = tmp_path / "run"
    assert run_cli("--data", str(write_data(tmp_path / "d.jsonl", 1)), "--modes", "cool", "--out", str(out)) == 0
    assert json.loads((out / "results.json").read_text())["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "cut at --max-tokens" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "nope.jsonl"], "nope.jsonl: data file not found"),
        (["--modes", "solo,fancy"], "unknown mode 'fancy'"),
        (["--modes", "solo:gemma3-270m"], "'gemma3-270m' is not among the selected models"),
        (["--models", "qwen-coder-0.5b,nobody"], "no model named 'nobody'"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, argv, message, capsys, fake_engine):
    data = write_data(tmp_path / "d.jsonl", 1)
    assert run_cli("--data", str(data), "--out", str(tmp_path / "run"), *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("coolfusion: ")
    made, _ = fake_engine
    assert made == []


def eval_two_real_problems(out: Path, modes: str, max_tokens: int) -> list[str]:
    """The `coolfusion eval gsm8k` command for the first two shared GSM8K problems with the real models."""
    if not SHARED_DATA.exists():
        pytest.skip(f"GSM8K data not found at {SHARED_DATA} (the shared folder beside the repository)")
    return [sys.executable, "-m", "coolfusion_local", "eval", "gsm8k", "--config", str(CONFIG),
            "--data", str(SHARED_DATA), "--limit", "2", "--modes", modes, "--max-tokens", str(max_tokens),
            "--out", str(out)]


@pytest.mark.models
def test_eval_on_the_real_models(tmp_path):
    out = tmp_path / "run"
    command = eval_two_real_problems(out, "solo,cool,cool+r", 48)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary, headroom = done.stdout.split("\n\n")
    rows = {line.split()[0]: line.split() for line in summary.splitlines()[2:]}
    # The headroom of the two real models on these problems, worked out from their own answers.
    assert "qwen-coder-0.5b (lead)" in headroom and "oracle (any member right)" in headroom
    assert "\nverdict: fusing can" in headroom
    assert set(rows) == {"solo:qwen-coder-0.5b", "solo:smollm2-135m", "cool", "cool+r"}
    assert all(row[2] == "2" for row in rows.values())
    assert rows["cool"][6].endswith("%")  # the agreed share
    # 48 tokens cut GSM8K working short: the cut column and the note say so.
    assert all(row[3].endswith("%") for row in rows.values()) and rows["solo:qwen-coder-0.5b"][3] != "0%"
    assert "cut at --max-tokens 48" in done.stderr
    answers = read_answers(out)
    assert len(answers) == 8 and all(a["answer_tokens"] > 0 and a["text"] for a in answers)
    assert {a["gold"] for a in answers} == {"72", "10"}
    results = json.loads((out / "results.json").read_text())
    assert results["modes"][2]["n"] == 2
    solo = {a["mode"].removeprefix("solo:"): a["correct"] for a in answers if a["mode"].startswith("solo:")}
    lead_right = [a["correct"] for a in answers if a["mode"] == "solo:qwen-coder-0.5b"]
    partner_right = [a["correct"] for a in answers if a["mode"] == "solo:smollm2-135m"]
    assert results["headroom"]["lead"] == "qwen-coder-0.5b" and set(solo) == set(MODELS)
    assert results["headroom"]["partners"][0]["H"] == sum(p and not q for p, q in zip(partner_right, lead_right))
    assert results["headroom"]["oracle"]["correct"] == sum(p or q for p, q in zip(partner_right, lead_right))
    # Cool+R picked one of the answers written in this run, scored by both real models.
    by_key = {(a["problem"], a["mode"]): a for a in answers}
    for problem in (0, 1):
        reranked = by_key[(problem, "cool+r")]
        assert reranked["composed_from"] == ["cool", *(f"solo:{name}" for name in MODELS)]
        source = "cool" if reranked["chosen"] == "fused" else f"solo:{reranked['chosen']}"
        assert reranked["text"] == by_key[(problem, source)]["text"]
        assert all(reranked["decoded_tokens"][name] > by_key[(problem, "cool")]["decoded_tokens"][name]
                   for name in MODELS)

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "8 of 8 answers already there" in again.stderr
    assert again.stdout == done.stdout


def test_the_progress_line_cuts_a_runaway_number_short():
    from coolfusion_local.commands.eval import Progress

    class Stream(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    stream = Stream()
    progress = Progress(1, stream)
    progress.update(1, record(extracted="1" * 200, correct=False))
    line = "".join(stream)
    assert "wrong (111111111111111… vs 0)" in line and len(line) < 120
