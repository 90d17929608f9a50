"""Run metrics: the live progress of one activity and the history of a run profile.

Pure functions of activity data — no queries, no clock of their own (``now`` is
passed in) — so the console pages and tests share one arithmetic for percentages,
rates, time left and the history chart's geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from connectors.choices import FINISHED_ACTIVITY_STATUSES, ActivityStatus
from connectors.models import Activity

#: Statuses after which the progress bar shows full, whatever the counters say.
_SUCCESSFUL_STATUSES = frozenset({ActivityStatus.COMPLETE, ActivityStatus.COMPLETE_WITH_ERRORS})


@dataclass(frozen=True)
class ActivityProgress:
    """What the live activity page shows about a run's progress.

    ``percent`` is None while the total is unknown (an indeterminate bar);
    ``rate`` is objects per second since the run started; ``remaining_seconds`` is
    the estimate of time left, only while running with a known total and rate.
    """

    running: bool
    processed: int
    total: int | None
    percent: int | None
    elapsed_seconds: float | None
    rate: float | None
    remaining_seconds: float | None

    @property
    def elapsed(self) -> str:
        return format_duration(self.elapsed_seconds)

    @property
    def remaining(self) -> str:
        return format_duration(self.remaining_seconds)


def is_running(activity: Activity) -> bool:
    """True until the activity reaches a finished status (queued counts as running)."""
    return activity.status not in FINISHED_ACTIVITY_STATUSES


def elapsed_seconds(activity: Activity, now: datetime) -> float | None:
    """Seconds from start to finish, or to ``now`` while running; None before start."""
    if activity.started_at is None:
        return None
    end = activity.finished_at or now
    return max(0.0, (end - activity.started_at).total_seconds())


def percent_done(processed: int, total: int | None, status: str) -> int | None:
    """Whole percent of ``total`` processed, capped at 100.

    A successfully finished run is 100 % even when its total was never known; a run
    still going with no total has no percentage (None).
    """
    if status in _SUCCESSFUL_STATUSES:
        return 100
    if not total:
        return None
    return min(100, processed * 100 // total)


def objects_per_second(processed: int, seconds: float | None) -> float | None:
    """The average rate so far; None when no time has passed yet."""
    if not seconds or seconds <= 0:
        return None
    return processed / seconds


def seconds_remaining(processed: int, total: int | None, rate: float | None) -> float | None:
    """Time left at the average rate so far; None when it cannot be estimated."""
    if not total or not rate:
        return None
    return max(0, total - processed) / rate


def activity_progress(activity: Activity, now: datetime) -> ActivityProgress:
    """The progress of ``activity`` as of ``now``."""
    running = is_running(activity)
    elapsed = elapsed_seconds(activity, now)
    rate = objects_per_second(activity.objects_processed, elapsed)
    return ActivityProgress(
        running=running,
        processed=activity.objects_processed,
        total=activity.objects_total,
        percent=percent_done(activity.objects_processed, activity.objects_total, activity.status),
        elapsed_seconds=elapsed,
        rate=rate,
        remaining_seconds=(
            seconds_remaining(activity.objects_processed, activity.objects_total, rate)
            if running
            else None
        ),
    )


def format_duration(seconds: float | None) -> str:
    """A duration as people read it: ``"< 0.1 s"``, ``"0.4 s"``, ``"42 s"``,
    ``"3 min 05 s"``, ``"2 h 07 min"``; ``"—"`` when unknown.

    Below ten seconds a tenth is shown, so that a sub-second run never reads "0 s".
    """
    if seconds is None:
        return "—"
    if seconds <= 0:
        return "0 s"
    if seconds < 0.1:
        return "< 0.1 s"
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


# -- history chart -----------------------------------------------------------------


#: How a run ended, as the history chart draws it: outcome (a CSS class suffix) →
#: (legend label, marker above the bar). Each outcome has its own fill pattern and
#: marker besides its colour, so that none is told apart by colour alone.
RUN_OUTCOMES = {
    "clean": ("Completed without errors", ""),
    "errors": ("Completed with errors", "!"),
    "failed": ("Failed or cancelled", "\N{MULTIPLICATION SIGN}"),
    "running": ("Running", "…"),
}


@dataclass(frozen=True)
class RunPoint:
    """One finished or running activity of a run profile, as the history chart needs it."""

    activity_id: int
    started_at: datetime
    status: str
    duration_seconds: float
    objects_processed: int
    error_count: int = 0

    @property
    def status_label(self) -> str:
        return ActivityStatus(self.status).label

    @property
    def outcome(self) -> str:
        """One of :data:`RUN_OUTCOMES`: a run that met any error is not drawn as clean."""
        if self.status in (ActivityStatus.FAILED, ActivityStatus.CANCELLED):
            return "failed"
        if self.status not in FINISHED_ACTIVITY_STATUSES:
            return "running"
        if self.error_count or self.status == ActivityStatus.COMPLETE_WITH_ERRORS:
            return "errors"
        return "clean"

    @property
    def outcome_label(self) -> str:
        return RUN_OUTCOMES[self.outcome][0]

    @property
    def marker(self) -> str:
        return RUN_OUTCOMES[self.outcome][1]

    @property
    def duration(self) -> str:
        return format_duration(self.duration_seconds)


@dataclass(frozen=True)
class ChartBar:
    """One run on the chart: its duration bar and its objects-processed point."""

    run: RunPoint
    x: float
    width: float
    y: float
    height: float
    point_x: float
    point_y: float

    @property
    def marker_y(self) -> float:
        """Where the run's outcome marker sits: just above the bar."""
        return self.y - 3


@dataclass(frozen=True)
class HistoryChart:
    """Geometry of the run-history SVG: duration bars and an objects-processed line.

    Each series is scaled to its own maximum; the left axis reads duration, the right
    axis objects processed. Coordinates are in SVG user units of a ``width`` by
    ``height`` view box, with the plot area inside ``left``/``right``/``top``/``bottom``.
    """

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    bars: tuple[ChartBar, ...]
    max_duration_seconds: float
    max_objects: int

    @property
    def line_points(self) -> str:
        """The objects-processed polyline, as an SVG ``points`` attribute."""
        return " ".join(f"{bar.point_x:.1f},{bar.point_y:.1f}" for bar in self.bars)

    @property
    def max_duration(self) -> str:
        return format_duration(self.max_duration_seconds)

    @property
    def legend(self) -> list[tuple[str, str, str]]:
        """(outcome, label, marker) of every outcome drawn, in :data:`RUN_OUTCOMES` order."""
        drawn = {bar.run.outcome for bar in self.bars}
        return [
            (outcome, label, marker)
            for outcome, (label, marker) in RUN_OUTCOMES.items()
            if outcome in drawn
        ]

    @property
    def first(self) -> RunPoint | None:
        return self.bars[0].run if self.bars else None

    @property
    def last(self) -> RunPoint | None:
        return self.bars[-1].run if self.bars else None


def history_chart(
    runs: Sequence[RunPoint],
    *,
    width: int = 720,
    height: int = 240,
    margin: tuple[int, int, int, int] = (20, 70, 30, 70),
) -> HistoryChart:
    """Lay out ``runs`` (oldest first) as bars of duration and a line of objects.

    ``margin`` is (top, right, bottom, left). A series whose maximum is zero is
    drawn flat on the baseline rather than divided by zero.
    """
    top, right_margin, bottom_margin, left = margin
    right = width - right_margin
    bottom = height - bottom_margin
    plot_width = right - left
    plot_height = bottom - top
    max_duration = max((run.duration_seconds for run in runs), default=0.0)
    max_objects = max((run.objects_processed for run in runs), default=0)
    slot = plot_width / len(runs) if runs else 0.0
    bars = []
    for index, run in enumerate(runs):
        bar_height = plot_height * _ratio(run.duration_seconds, max_duration)
        x = left + index * slot
        bars.append(
            ChartBar(
                run=run,
                x=x + slot * 0.15,
                width=slot * 0.7,
                y=bottom - bar_height,
                height=bar_height,
                point_x=x + slot / 2,
                point_y=bottom - plot_height * _ratio(run.objects_processed, max_objects),
            )
        )
    return HistoryChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        bars=tuple(bars),
        max_duration_seconds=max_duration,
        max_objects=max_objects,
    )


def _ratio(value: float, maximum: float) -> float:
    return value / maximum if maximum > 0 else 0.0
