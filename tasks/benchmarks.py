"""One small surface per benchmark, and the registry that finds them.

Every benchmark folder `tasks/<name>/` exposes `BENCHMARK` in `tasks/<name>/benchmark.py`, a
`Benchmark` of the same shape for all of them:

* `score(path, **options) -> Scored`: rescore an official prediction file; `options` declares
  the flags that call takes (the CLI builds `longact score <name>` from them);
* `report`: the columns and plots the comparison tables and the leaderboard show for its tasks
  and its group, and its `headline`: the columns of its published table, which the leaderboard
  shows one row per model;
* `training`: the RL prompt set built with the benchmark's own prompt builder, and `rewards`, the
  per-item scorers the trainer's rewards are;
* `descriptions` and `needs`: one line per task and group, and what tasks read from outside the
  repository (network, local copies, essays), which `longact tasks` lists for offline users.
* `published_comparable(data_sources) -> (bool, reason)`: whether a task's scores, given its
  run.json `data_sources`, can stand next to the benchmark's published numbers (RULER: not on a
  generated essay haystack or without official sizing); `benchmarks.published_comparable(task,
  data_sources)` asks the task's benchmark.

Units: per-item scores from `score` and every reward are fractions in [0, 1]; summaries (what
the official scripts print) and eval metrics are in percent.

The registry finds benchmarks by folder, so adding one edits nothing outside its folder:

    from tasks import benchmarks
    benchmarks.get("ruler").score("pred/vt.jsonl", task="vt").summary
    benchmarks.for_task("longbench_v2_cot").report.splits
    benchmarks.published_comparable("ruler_niah_single_2", run.tasks["ruler_niah_single_2"].data_sources)
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from tasks.errors import UserError

TASKS_DIR = Path(__file__).resolve().parent

Reward = Callable[[str, list], float]
"""(completion, gold answers) -> score in [0, 1], the eval task's per-item score / 100."""


def always_comparable(data_sources: list[dict]) -> tuple[bool, str]:
    """The default `Benchmark.published_comparable`: nothing recorded makes scores incomparable."""
    return True, ""


@dataclass(frozen=True)
class Option:
    """A keyword of `Benchmark.score`, shown as `--<name>` (underscores as dashes) by the CLI."""

    name: str
    help: str
    flag: bool = False
    """On/off switch (default off) instead of a value."""
    choices: tuple[str, ...] = ()
    """Allowed values (checked by `Benchmark.options_from`); empty: any."""
    default: Any = None

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value):
        """The value to pass on (the default when not given); UserError when not allowed."""
        if value is None:
            value = self.default
        if self.choices and value not in self.choices:
            raise UserError(f"{self.flag_name} must be one of {', '.join(self.choices)} (got {value!r})")
        return value


@dataclass(frozen=True)
class Scored:
    """An official prediction file, rescored."""

    task: str
    """Our task name for these items (the task a saved run reports)."""
    per_item: list[float]
    """Official per-item scores, fractions in [0, 1], in file order."""
    summary: dict
    """The numbers the official script prints, in percent, unrounded (`longact score --json`)."""
    text: str
    """The same for people (`longact score`)."""
    docs: list[dict] | None = None
    """Per-item fields the breakdowns group by (None: no breakdown)."""
    breakdown_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Split:
    """One column of a task shown alone: the mean over items whose doc `field` equals `value`
    (`field` None: all items)."""

    label: str
    field: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Plot:
    """A leaderboard figure. `kind` "group_lines": the group's mean per value of the run's
    group breakdown `field` (numeric, log2 x axis), one line per run; "splits": the `report.splits`
    of task `target` as bars with bootstrap intervals, one bar set per run."""

    title: str
    kind: str
    target: str
    ylabel: str
    field: str | None = None
    xlabel: str = ""


@dataclass(frozen=True)
class Headline:
    """The benchmark's own headline columns: its column group in the leaderboard overview (one row
    per model) and the published-format table of its section. `kind`:

    * "splits": the `report.splits` of task `target` (LongBench v2: Overall / Easy / Hard / Short /
      Medium / Long), each the mean over its items; `variants` are further tasks with the same
      splits, shown as rows of the section only (LongBench v2 with CoT);
    * "per_value": the mean over the member tasks of group `target` per value of the numeric doc
      field `field` (RULER: context length), their average "Avg", with `weighted` the averages
      weighted by rank increasing and decreasing with the value, and with `threshold` the longest
      value whose mean is at least `threshold` (RULER's effective length);
    * "task_mean": the mean over the member tasks of group `target` ("Avg").

    With `details` the per-task columns are one click away in the overview. A mean over only some
    of the declared members is marked as not comparable, with the members it covers."""

    kind: str
    target: str
    target_label: str = ""
    """How the section's rows name `target` beside its `variants` (e.g. "w/o CoT")."""
    variants: tuple[tuple[str, str], ...] = ()
    """(task, label) pairs shown as further rows of the section ("splits")."""
    also: tuple[str, ...] = ()
    """Tasks outside group `target` shown as their own columns after the average ("task_mean")."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Short column headers of member tasks (default: the task name without the benchmark prefix)."""
    field: str | None = None
    threshold: float | None = None
    threshold_label: str = ""
    """Header of the threshold column (e.g. "Eff. length")."""
    threshold_note: str = ""
    """What the threshold is, said once under the tables."""
    order: int = 50
    """Where its column group stands in the overview: lower first, ties by folder name."""
    weighted: bool = False
    details: bool = False

    def label_of(self, task: str, bench: str) -> str:
        return self.labels.get(task) or task.removeprefix(f"{bench}_")


@dataclass(frozen=True)
class Report:
    """What the comparison tables and the leaderboard show for a benchmark's tasks and group."""

    splits: tuple[Split, ...] = ()
    """Columns of one of its tasks run outside its group (empty: one column, the primary metric)."""
    group_field: str | None = None
    """Columns of its group: the group mean per value of this field of the run's group
    breakdown, then the group mean (None: each member task, then the group mean)."""
    plots: tuple[Plot, ...] = ()
    headline: Headline | None = None
    """The leaderboard's columns for the benchmark (None: its tasks are listed one by one)."""


@dataclass(frozen=True)
class TrainingItem:
    """One RL prompt: the user turn exactly as the evaluation sends it, before window fitting."""

    id: str
    prompt: str
    answers: list[str]
    reward: str
    """Key of `rewards()`."""


@dataclass(frozen=True)
class Training:
    """An RL prompt set built from the benchmark's own data and prompt builder."""

    source: str
    """The trainer's `data.source` value that selects it."""
    items: Callable[..., list[TrainingItem]]
    """Called with the trainer's data settings as keywords (`n`, `seed`, `path`, `tokenizer`,
    `lengths`, ...); each set reads those it needs."""


@dataclass(frozen=True)
class Need:
    """Something tasks read from outside this repository, and how to run them without the network."""

    what: str
    """What is read and from where, e.g. "the official data from the Hugging Face Hub (THUDM/LongBench-v2)"."""
    key: str
    """The `--metadata` key that points at a local copy instead (tests check that every task
    named here reads it)."""
    example: str
    """An example value of the key, e.g. "/data/LongBench-v2/data.json"."""
    how: str = ""
    """How to get the local copy once, where the network allows."""
    found_without_key: bool = False
    """The copy `how` makes is where the tasks look by default (the key is for copies elsewhere)."""
    fallback: str = ""
    """What the tasks do offline without it (empty: they cannot run)."""
    tasks: tuple[str, ...] = ()
    """The tasks that need it (empty: every task of the benchmark)."""

    def offline(self) -> str:
        """One line: how to run these tasks offline."""
        flag = f"--metadata '{{\"{self.key}\": \"{self.example}\"}}'"
        if self.how and self.found_without_key:
            text = f"{self.how}, or {flag} for a copy elsewhere"
        else:
            text = f"{self.how}, then {flag}" if self.how else flag
        return text + (f"; without it {self.fallback}" if self.fallback else "")

    def to_dict(self) -> dict:
        return {"what": self.what, "metadata_key": self.key, "offline": self.offline(),
                "runs_without_it": bool(self.fallback)}


@dataclass(frozen=True)
class Benchmark:
    """The uniform surface of one benchmark folder (see the module docstring)."""

    name: str
    """Folder name, also the lm-eval group (or task) name its tasks start from."""
    title: str
    score: Callable[..., Scored] | None = None
    options: tuple[Option, ...] = ()
    report: Report = Report()
    training: Training | None = None
    rewards: Mapping[str, Reward] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """One line per task and group (`longact tasks`); tests require one for each."""
    needs: tuple[Need, ...] = ()
    """What its tasks read from outside the repository (none: they run offline as shipped)."""
    score_examples: tuple[str, ...] = ()
    """Arguments after `longact score <name>` in the examples of its `--help`."""

    def needs_of(self, task: str) -> list[Need]:
        """The needs of one task (a group: those of any member)."""
        members = self.groups.get(task, (task,))
        return [n for n in self.needs if not n.tasks or any(t in n.tasks for t in members)]
    published_comparable: Callable[[list[dict]], tuple[bool, str]] = always_comparable
    """(run.json `data_sources` of one task) -> (comparable with published numbers, reason if not)."""

    def options_from(self, given: Mapping[str, Any]) -> dict:
        """Keyword arguments of `score`: each declared option checked, defaults filled in."""
        return {o.name: o.check(given.get(o.name)) for o in self.options}

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names defined by the folder's YAML files."""
        return _yaml_names(self.name)[0]

    @property
    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Group name -> member tasks, from the folder's YAML files."""
        return _yaml_names(self.name)[1]


# Registry -------------------------------------------------------------------------------------

@functools.cache
def _registry() -> dict[str, Benchmark]:
    found = {}
    for info in sorted(pkgutil.iter_modules([str(TASKS_DIR)]), key=lambda i: i.name):
        if info.ispkg and (TASKS_DIR / info.name / "benchmark.py").is_file():
            bench = importlib.import_module(f"tasks.{info.name}.benchmark").BENCHMARK
            found[bench.name] = bench
    return found


def all() -> list[Benchmark]:  # noqa: A001 - the registry's natural verb, used as benchmarks.all()
    """Every benchmark, by folder name."""
    return list(_registry().values())


def get(name: str) -> Benchmark:
    """The benchmark `name`; UserError naming the known ones otherwise."""
    try:
        return _registry()[name]
    except KeyError:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(_registry())}") from None


def for_task(name: str) -> Benchmark | None:
    """The benchmark that defines task or group `name`, or None."""
    return next((b for b in all() if name in b.tasks or name in b.groups), None)


def report_for(name: str) -> Report:
    """Report settings of the benchmark of task or group `name` (the plain default for others)."""
    bench = for_task(name)
    return bench.report if bench else Report()


def group_members(group: str, available) -> list[str]:
    """The tasks of `group` among `available`, sorted: the members its YAML declares, or, for a
    group no benchmark here declares, lm-eval's `<group>_<task>` naming."""
    bench = for_task(group)
    declared = bench.groups.get(group) if bench else None
    if declared is not None:
        return sorted(t for t in available if t in declared)
    return sorted(t for t in available if t.startswith(f"{group}_"))


def published_comparable(task: str, data_sources: list[dict]) -> tuple[bool, str]:
    """Whether task `task`'s scores, built from `data_sources` (its run.json `data_sources`), are
    comparable with its benchmark's published numbers, and why not (tasks of no benchmark here:
    comparable)."""
    bench = for_task(task)
    return bench.published_comparable(data_sources) if bench else always_comparable(data_sources)


def rewards() -> dict[str, Reward]:
    """Every benchmark's rewards by name (a name declared twice is an error)."""
    out: dict[str, Reward] = {}
    for bench in all():
        for name, fn in bench.rewards.items():
            if name in out:
                raise ValueError(f"reward {name!r} declared by two benchmarks")
            out[name] = fn
    return out


def training_sets() -> dict[str, Training]:
    """`data.source` value -> the benchmark's training set."""
    return {b.training.source: b.training for b in all() if b.training}


# Task and group names from the YAML files ----------------------------------------------------

@functools.cache
def _yaml_loader():
    """A YAML loader that reads lm-eval task files without running their `!function` tags."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return Loader


@functools.cache
def _yaml_names(folder: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    import yaml

    tasks, groups = [], {}
    for path in sorted((TASKS_DIR / folder).glob("*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader()) or {}
        if "group" in doc and isinstance(doc.get("task"), list):
            groups[str(doc["group"])] = tuple(str(t) for t in doc["task"])
        elif isinstance(doc.get("task"), str):
            tasks.append(doc["task"])
    return tuple(tasks), groups
