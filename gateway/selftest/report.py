"""A self-test report: checks fit for the wire, the verdict, and the text and JSON renderings. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from signaling.protocol import MAX_CHECKS, CheckStatus, SelftestCheck, SelftestReport, dump

# The wire limits of signaling.protocol: a longer name or detail would make the report unparseable over there.
MAX_NAME: Final = 128
MAX_DETAIL: Final = 512

_MARKS: Final = {
    CheckStatus.OK: "[ ok ]",
    CheckStatus.WARNING: "[warn]",
    CheckStatus.FAILED: "[FAIL]",
    CheckStatus.SKIPPED: "[skip]",
}


def _clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters (an ellipsis says something was cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def check(name: str, status: CheckStatus, detail: str = "", *, required: bool = True) -> SelftestCheck:
    """A check whose name and detail fit the wire; a skipped check is never required."""
    return SelftestCheck(
        name=_clip(name, MAX_NAME),
        status=status,
        detail=_clip(detail, MAX_DETAIL),
        required=required and status is not CheckStatus.SKIPPED,
    )


def ok(name: str, detail: str, *, required: bool = True) -> SelftestCheck:
    return check(name, CheckStatus.OK, detail, required=required)


def warning(name: str, detail: str, *, required: bool = True) -> SelftestCheck:
    return check(name, CheckStatus.WARNING, detail, required=required)


def failed(name: str, detail: str, *, required: bool = True) -> SelftestCheck:
    return check(name, CheckStatus.FAILED, detail, required=required)


def skipped(name: str, detail: str) -> SelftestCheck:
    return check(name, CheckStatus.SKIPPED, detail, required=False)


def unexpected(name: str, exc: BaseException, *, required: bool = True) -> SelftestCheck:
    """A failed check for an exception the probe did not expect: its type and message."""
    message = str(exc)
    return failed(
        name, f"unexpected {type(exc).__name__}: {message}" if message else f"unexpected {type(exc).__name__}"
    )


def blocking(checks: Iterable[SelftestCheck]) -> list[SelftestCheck]:
    """The failed checks that a call needs."""
    return [c for c in checks if c.required and c.status is CheckStatus.FAILED]


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as signaling writes its own times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


_SEVERITY: Final = (CheckStatus.FAILED, CheckStatus.WARNING, CheckStatus.OK, CheckStatus.SKIPPED)


def _folded(rest: Sequence[SelftestCheck]) -> SelftestCheck:
    """One check standing for those beyond the wire's limit, as bad as the worst of them."""
    worst = min(rest, key=lambda c: _SEVERITY.index(c.status))
    names = ", ".join(c.name for c in rest if c.status is worst.status)
    return check(
        "more-checks",
        worst.status,
        f"{len(rest)} more checks, {worst.status}: {names}",
        required=bool(blocking(rest)),
    )


def make_report(
    checks: Iterable[SelftestCheck], *, finished_at: datetime, request_id: str | None = None
) -> SelftestReport:
    """The report of these checks: ok when no required check failed (beyond MAX_CHECKS, the rest in one)."""
    items = tuple(checks)
    if len(items) > MAX_CHECKS:
        items = (*items[: MAX_CHECKS - 1], _folded(items[MAX_CHECKS - 1 :]))
    return SelftestReport(
        request_id=request_id, ok=not blocking(items), checks=items, finished_at=timestamp(finished_at)
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def verdict(report: SelftestReport) -> str:
    """The last line of the text rendering: ready for calls or not, and why not."""
    stopping = blocking(report.checks)
    if stopping:
        return "NOT ready for calls: " + ", ".join(c.name for c in stopping) + " failed."
    notes = []
    warnings = sum(c.status is CheckStatus.WARNING for c in report.checks)
    optional = sum(c.status is CheckStatus.FAILED for c in report.checks)
    if warnings:
        notes.append(_count(warnings, "warning"))
    if optional:
        notes.append(_count(optional, "optional check") + " failed")
    return "Ready for calls" + (f" ({', '.join(notes)})." if notes else ": everything a call needs works.")


def render_text(report: SelftestReport) -> str:
    """One line per check (mark, name, detail), then the verdict; for a terminal or a log."""
    width = max((len(c.name) for c in report.checks), default=0)
    lines = []
    for item in report.checks:
        detail = item.detail
        if item.status is CheckStatus.FAILED and not item.required:
            detail += " (optional)"
        lines.append(f"{_MARKS[item.status]} {item.name.ljust(width)}  {detail}".rstrip())
    lines.append(verdict(report))
    return "\n".join(lines) + "\n"


def render_json(report: SelftestReport) -> str:
    """The report as signaling receives it (`signaling.protocol.parse` reads it back)."""
    return dump(report)
