"""The paper's four experiments as data (SPEC section 8): tasks and their pre-trainings."""

from __future__ import annotations

from dataclasses import dataclass

from sciml.physics import SystemSpec

MIXED = "mixed"


@dataclass(frozen=True)
class Pretraining:
    """The data a model is pre-trained on: one system, or an equal-share mixture."""

    label: str
    specs: tuple[SystemSpec, ...]


@dataclass(frozen=True)
class Task:
    """A downstream dataset with the shift from its pre-training and the pre-trainings to fine-tune."""

    downstream: SystemSpec
    shift: str
    pretrainings: tuple[Pretraining, ...]

    @property
    def name(self) -> str:
        return self.downstream.name

    @property
    def system(self) -> str:
        return self.downstream.system


@dataclass(frozen=True)
class Question:
    key: str
    title: str
    figure: str
    tasks: tuple[Task, ...]

    def restricted_to(self, systems: tuple[str, ...] | None) -> "Question":
        if not systems:
            return self
        tasks = tuple(t for t in self.tasks if t.system in systems)
        if not tasks:
            raise ValueError(f"systems: {systems} leaves no task in {self.key}; "
                             f"it has {sorted({t.system for t in self.tasks})}")
        return Question(self.key, self.title, self.figure, tasks)


def _single(name: str) -> Pretraining:
    return Pretraining(name, (SystemSpec.parse(name),))


def _task(downstream: str, shift: str, *pretrainings: Pretraining) -> Task:
    return Task(SystemSpec.parse(downstream), shift, pretrainings)


SYS1_PRE, SYS2_PRE, SYS3_PRE = _single("SYS-1(1,5)"), _single("SYS-2(0.2,1)"), _single("SYS-3(1,10)")
MIXED_PRE = Pretraining(MIXED, SYS1_PRE.specs + SYS2_PRE.specs + SYS3_PRE.specs)

# Q3's shift table (SPEC section 8), reused by Q4's out-of-distribution tasks.
SHIFTS = (
    ("SYS-1(1,2.5)", "none", SYS1_PRE), ("SYS-1(2.5,7.5)", "mild", SYS1_PRE),
    ("SYS-1(5,10)", "med", SYS1_PRE), ("SYS-1(10,20)", "large", SYS1_PRE),
    ("SYS-2(0.2,0.4)", "none", SYS2_PRE), ("SYS-2(0.6,1.4)", "mild", SYS2_PRE),
    ("SYS-2(1,2)", "med", SYS2_PRE), ("SYS-2(2,5)", "large", SYS2_PRE),
)

Q1 = Question("q1", "Q1 downstream data scaling", "fig3_data_scaling.png", (
    _task("SYS-1(5,10)", "med", SYS1_PRE),
    _task("SYS-2(1,2)", "med", SYS2_PRE),
))
Q2 = Question("q2", "Q2 model scaling", "fig4_model_scaling.png", Q1.tasks)
Q3 = Question("q3", "Q3 physics shift", "fig5_physics_shift.png",
              tuple(_task(name, shift, pre) for name, shift, pre in SHIFTS))
Q4 = Question("q4", "Q4 multiple operators", "fig6_multi_operator.png", (
    _task("SYS-1(1,2.5)", "none", MIXED_PRE, SYS1_PRE),
    _task("SYS-2(0.2,0.4)", "none", MIXED_PRE, SYS2_PRE),
    _task("SYS-3(1,5)", "none", MIXED_PRE, SYS3_PRE),
))
# The OOD tasks of Q3, fine-tuned from the mixed and the same-system models (--ood).
Q4_OOD = tuple(_task(name, shift, MIXED_PRE, pre) for name, shift, pre in SHIFTS if shift != "none")

QUESTIONS = {q.key: q for q in (Q1, Q2, Q3, Q4)}
