"""The final decision: ``min(verdict, gates)``. Pure: no I/O, no clock, no settings.

Every arm that turns a review into submit/reject (the served path, the shadow runner, the lane
evaluator) calls this one function, so a rule change cannot reach one arm and miss another.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from app.gates.checks import GateResult
from app.review.schemas import Decision, Verdict


class VerdictReason(StrEnum):
    """Why a verdict alone stops an order (gate codes cover the rest)."""

    VERDICT_VETO = "verdict_veto"
    VERDICT_ESCALATE = "verdict_escalate"
    VERDICT_ABSTAIN = "verdict_abstain"


def final_decision(
    verdict: Verdict, gates: Iterable[GateResult], abstain_action: str
) -> tuple[Decision, list[str]]:
    """Submit only if the verdict allows it and every gate passed; else reject, saying why.

    ``approve`` and ``adjust`` allow (an adjusted quantity is what the gates judged);
    ``abstain`` allows only when the policy's ``abstain_action`` is exactly ``"submit"``
    (anything else, including a typo, rejects); ``veto`` and ``escalate`` reject.
    """
    reasons: list[str] = []
    if verdict is Verdict.VETO:
        reasons.append(VerdictReason.VERDICT_VETO.value)
    elif verdict is Verdict.ESCALATE:
        reasons.append(VerdictReason.VERDICT_ESCALATE.value)
    elif verdict is Verdict.ABSTAIN and abstain_action != "submit":
        reasons.append(VerdictReason.VERDICT_ABSTAIN.value)
    reasons.extend(g.code.value for g in gates if not g.passed)
    return (Decision.REJECT if reasons else Decision.SUBMIT), reasons
