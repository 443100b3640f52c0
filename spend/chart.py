"""A bar chart of the month's known cost per day, drawn as SVG on the server: no script, no library."""

from dataclasses import dataclass
from decimal import Decimal

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
STEPS = tuple(Decimal(step) for step in ("1", "2", "2.5", "5", "10"))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what the bar's own <title> says on hover
    day: int
    tick: bool  # whether the day number is written under it


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    # [(y, text)] of the horizontal grid lines
    grid: list[tuple[float, str]]
    baseline: float
    left: int
    right: int


def nice_top(value: Decimal) -> Decimal:
    """A round number at or above value, so the grid lines read as round amounts."""
    if value <= 0:
        return Decimal(1)
    scale = Decimal(10) ** value.adjusted()
    return next(step * scale for step in STEPS if value <= step * scale)


def daily(days: list[tuple[int, Decimal, int]]) -> Chart:
    """days: [(day of month, known cost, jobs)]."""
    top = nice_top(max((cost for _, cost, _ in days), default=Decimal(0)))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bars = []
    for index, (day, cost, jobs) in enumerate(days):
        height = float(cost / top) * plot_height
        bars.append(
            Bar(
                x=round(LEFT + index * slot + slot * 0.15, 1),
                y=round(TOP + plot_height - height, 1),
                width=round(slot * 0.7, 1),
                height=round(height, 1),
                label=f"Day {day}: {cost:.2f} known cost, {jobs} job{'s' if jobs != 1 else ''}",
                day=day,
                tick=day == 1 or day % 5 == 0,
            )
        )
    grid = [(round(TOP + plot_height * (1 - part / 4), 1), f"{top * part / 4:.2f}") for part in range(5)]
    return Chart(WIDTH, HEIGHT, bars, grid, TOP + plot_height, LEFT, WIDTH - RIGHT)
