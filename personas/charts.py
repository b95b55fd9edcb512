"""The dashboard's usage statistics (aggregated in the database, a fixed number of queries however
much has been generated) and the server-rendered SVG charts that draw them (no scripts, no CDN)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache

from django.db.models import Case, Count, Q, Sum, Value, When
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from media_pipeline.models import UsageRecord
from personas.models import WritingPersona

USAGE_KIND_LABELS = {"voice_clone": "Voice training", "voice_synthesis": "Audio", "avatar_video": "Video"}
CONTENT_TYPE_LABELS = {
    "story": "Story",
    "linkedin": "LinkedIn",
    "blog": "Blog",
    "email": "Email",
    "voice_sample": "Voice samples",
    "preview": "Previews",
    "": "Other",
}
VOICE_KINDS = ("voice_clone", "voice_synthesis")
MONTHS_SHOWN = 6
BAR_COLOUR = "#4f46e5"
TEXT_COLOUR = "#374151"


@dataclass(frozen=True)
class Breakdown:
    label: str
    uses: int
    cost: Decimal
    seconds: float


@dataclass(frozen=True)
class MonthUsage:
    month: date
    cost: Decimal
    audio_minutes: float
    video_minutes: float


@dataclass
class UsageStatistics:
    uses: int
    cost: Decimal
    voice_cost: Decimal
    avatar_cost: Decimal
    audio_minutes: float
    video_minutes: float
    by_platform: list[Breakdown]
    by_kind: list[Breakdown]
    by_month: list[MonthUsage]


@dataclass(frozen=True)
class CapabilityCosts:
    voice_cost: Decimal
    avatar_cost: Decimal


def usage_statistics(persona: WritingPersona, *, today: date | None = None) -> UsageStatistics:
    """Every figure comes from the persona's usage rows in a few grouped queries: cost and
    seconds per content type, kind and (for the charts) calendar month, and uses per content type
    and per kind. The groups are few however many rows there are, so the totals and breakdowns
    are added up from them here. (The live-status panel reads capability_costs instead.)"""
    months = _recent_months(today or date.today(), MONTHS_SHOWN)
    persona_rows = UsageRecord.objects.filter(persona=persona).order_by()
    # Which of the charted months a row falls in (-1: none), by datetime ranges: TruncMonth
    # would run as a Python function on every row in SQLite.
    edges = [datetime.combine(edge, time.min, tzinfo=UTC) for edge in [*months, _next_month(months[-1])]]
    whens = [When(created_at__lt=edges[0], then=Value(-1))]
    whens += [When(created_at__lt=end, then=Value(index)) for index, end in enumerate(edges[1:])]
    rows = persona_rows.annotate(month=Case(*whens, default=Value(-1)))
    groups = list(
        rows.values("content_type", "kind", "month").annotate(cost=Sum("cost_usd"), seconds=Sum("media_seconds"))
    )
    # Uses are pieces of content: one per job (a five-scene story is one use, not six provider
    # calls), and one per usage row made outside a job. A job has one content type, so the
    # counts per content type add up to the total.
    pieces = Count("job", distinct=True) + Count("pk", filter=Q(job__isnull=True))
    uses_by_type = dict(persona_rows.values("content_type").annotate(uses=pieces).values_list("content_type", "uses"))
    uses_by_kind = dict(persona_rows.values("kind").annotate(uses=pieces).values_list("kind", "uses"))
    return UsageStatistics(
        uses=sum(uses_by_type.values()),
        cost=sum((g["cost"] for g in groups), Decimal("0")),
        voice_cost=sum((g["cost"] for g in groups if g["kind"] in VOICE_KINDS), Decimal("0")),
        avatar_cost=sum((g["cost"] for g in groups if g["kind"] == "avatar_video"), Decimal("0")),
        audio_minutes=sum(g["seconds"] for g in groups if g["kind"] == "voice_synthesis") / 60,
        video_minutes=sum(g["seconds"] for g in groups if g["kind"] == "avatar_video") / 60,
        by_platform=_breakdown(groups, "content_type", CONTENT_TYPE_LABELS, uses_by_type),
        by_kind=_breakdown(groups, "kind", USAGE_KIND_LABELS, uses_by_kind),
        by_month=[
            _month_usage([g for g in groups if g["month"] == index], month) for index, month in enumerate(months)
        ],
    )


def capability_costs(persona: WritingPersona) -> CapabilityCosts:
    """What the persona's voice and avatar have cost so far, in one aggregate: all the polled
    live-status panel shows of the statistics."""
    totals = UsageRecord.objects.filter(persona=persona).aggregate(
        voice_cost=Sum("cost_usd", filter=Q(kind__in=VOICE_KINDS)),
        avatar_cost=Sum("cost_usd", filter=Q(kind="avatar_video")),
    )
    return CapabilityCosts(totals["voice_cost"] or Decimal("0"), totals["avatar_cost"] or Decimal("0"))


def _breakdown(groups: list[dict], field: str, labels: dict, uses: dict) -> list[Breakdown]:
    """The groups' cost and seconds merged by one field, with its uses; most used first (ties in
    the field's order)."""
    merged: dict[str, dict] = {}
    for group in groups:
        row = merged.setdefault(group[field], {"cost": Decimal("0"), "seconds": 0.0})
        row["cost"] += group["cost"]
        row["seconds"] += group["seconds"]
    return [
        Breakdown(
            labels.get(value, value.replace("_", " ").capitalize()), uses.get(value, 0), row["cost"], row["seconds"]
        )
        for value, row in sorted(merged.items(), key=lambda item: (-uses.get(item[0], 0), item[0]))
    ]


def _month_usage(groups: list[dict], month: date) -> MonthUsage:
    return MonthUsage(
        month=month,
        cost=sum((g["cost"] for g in groups), Decimal("0")),
        audio_minutes=sum(g["seconds"] for g in groups if g["kind"] == "voice_synthesis") / 60,
        video_minutes=sum(g["seconds"] for g in groups if g["kind"] == "avatar_video") / 60,
    )


def _next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def _recent_months(today: date, count: int) -> list[date]:
    months, year, month = [], today.year, today.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


# --- SVG -------------------------------------------------------------------------------------


def bar_chart(items: list[tuple[str, float, str]], *, title: str, width: int = 320) -> SafeString:
    """Horizontal bars: (label, value, value shown as text) per row."""
    if not items:
        return format_html('<p class="muted">{}: nothing yet.</p>', title)
    row_height, label_width, value_width = 26, 90, 50
    bar_space = width - label_width - value_width
    peak = max(value for _, value, _ in items) or 1
    rows = format_html_join(
        "",
        '<g transform="translate(0,{})"><title>{}: {}</title>'
        '<text x="0" y="15" font-size="13" fill="{}">{}</text>'
        '<rect x="{}" y="3" width="{}" height="16" rx="3" fill="{}"></rect>'
        '<text x="{}" y="15" font-size="12" fill="{}">{}</text></g>',
        (
            (
                index * row_height,
                label,
                shown,
                TEXT_COLOUR,
                label,
                label_width,
                max(1, round(bar_space * value / peak)),
                BAR_COLOUR,
                label_width + max(1, round(bar_space * value / peak)) + 6,
                TEXT_COLOUR,
                shown,
            )
            for index, (label, value, shown) in enumerate(items)
        ),
    )
    return _svg(title, width, row_height * len(items), rows)


def column_chart(items: list[tuple[str, float, str]], *, title: str, width: int = 320, height: int = 170) -> SafeString:
    """Vertical columns over time: (label under the column, value, value shown above it)."""
    plot_height = height - 40
    step = width / max(1, len(items))
    peak = max((value for _, value, _ in items), default=0) or 1
    columns = format_html_join(
        "",
        '<g><title>{}: {}</title><rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}"></rect>'
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{}">{}</text>'
        '<text x="{}" y="{}" font-size="12" text-anchor="middle" fill="{}">{}</text></g>',
        (
            _column(index, step, plot_height, value / peak, label, shown, height)
            for index, (label, value, shown) in enumerate(items)
        ),
    )
    return _svg(title, width, height, columns)


def _column(index, step, plot_height, share, label, shown, height):
    bar_height = round(plot_height * share)
    left, bar_width = round(index * step + step * 0.2), round(step * 0.6)
    centre = round(index * step + step / 2)
    top = 18 + plot_height - bar_height
    return (
        label,
        shown,
        left,
        top,
        bar_width,
        bar_height,
        BAR_COLOUR,
        centre,
        top - 4,
        TEXT_COLOUR,
        shown,
        centre,
        height - 6,
        TEXT_COLOUR,
        label,
    )


def _svg(title: str, width: int, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
        title,
        width,
        height,
        title,
        body,
    )


def money(value: Decimal) -> str:
    return f"${value:,.2f}" if value >= Decimal("0.01") or value == 0 else f"${value:,.4f}"


CHART_TITLES = {
    "platform": "Uses per platform",
    "kind": "Uses per content type",
    "cost": "Cost per month",
    "minutes": "Minutes of audio and video per month",
}


def dashboard_charts(stats: UsageStatistics) -> tuple[tuple[str, SafeString], ...]:
    """(caption, SVG) for each dashboard chart. The drawing depends only on the figures, which
    rarely change between two loads of the dashboard, so each process keeps recent drawings."""
    return _draw_charts(tuple(stats.by_platform), tuple(stats.by_kind), tuple(stats.by_month))


@lru_cache(maxsize=256)
def _draw_charts(
    by_platform: tuple[Breakdown, ...], by_kind: tuple[Breakdown, ...], by_month: tuple[MonthUsage, ...]
) -> tuple[tuple[str, SafeString], ...]:
    months = [m.month.strftime("%b %y") for m in by_month]
    minutes = [m.audio_minutes + m.video_minutes for m in by_month]
    charts = {
        "platform": bar_chart([(r.label, r.uses, f"{r.uses}") for r in by_platform], title=CHART_TITLES["platform"]),
        "kind": bar_chart([(r.label, r.uses, f"{r.uses}") for r in by_kind], title=CHART_TITLES["kind"]),
        "cost": column_chart(
            [(label, float(m.cost), money(m.cost)) for label, m in zip(months, by_month, strict=True)],
            title=CHART_TITLES["cost"],
        ),
        "minutes": column_chart(
            [(label, value, f"{value:.1f}") for label, value in zip(months, minutes, strict=True)],
            title=CHART_TITLES["minutes"],
        ),
    }
    return tuple((CHART_TITLES[name], svg) for name, svg in charts.items())
