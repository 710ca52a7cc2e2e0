"""What every plotly figure shares so that it reads well in the app and in a report
opened offline: one look per method (colour, dash and marker together, so lines stay
apart in grey print and for colour-blind readers), margins that grow to fit tick
labels and axis titles, the title clear of plotly's toolbar, and the legend below the
x-axis title instead of on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import qualitative

PALETTE = qualitative.Plotly
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star", "pentagon", "hexagon")
BASELINE_COLOUR = "#7f7f7f"
# Top margin: plotly's toolbar takes the top ~30 px on hover; the title sits below it,
# just above the plot area.
TOP_MARGIN = 72
TITLE_LINE = 44  # characters of a title that fit a half-width chart; a longer one wraps its "(...)" part
MARKERS_PER_LINE = 12  # markers identify a line; more would hide the curve on dense x grids


@dataclass(frozen=True)
class LineStyle:
    colour: str
    dash: str
    symbol: str

    def line(self, width: float = 2.5) -> dict:
        return dict(color=self.colour, dash=self.dash, width=width)

    def marker(self, size: int = 7) -> dict:
        return dict(color=self.colour, symbol=self.symbol, size=size, maxdisplayed=MARKERS_PER_LINE)


def method_style(index: int) -> LineStyle:
    """The look of the `index`-th method of a figure: no two of the first
    len(PALETTE) x len(DASHES) methods share colour, dash and marker together."""
    return LineStyle(PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)], SYMBOLS[index % len(SYMBOLS)])


BASELINE_STYLE = LineStyle(BASELINE_COLOUR, "dash", "circle-open")


def readable(fig: go.Figure, *, title: str | None = None, legend_entries: int = 0, height: int = 360) -> go.Figure:
    """Margins that fit tick labels and axis titles (automargin), the title left-aligned
    above the plot area and below the toolbar, and a horizontal legend at the bottom
    of the figure, under the x-axis title. The height grows by one legend line per
    entry (the narrowest layouts stack them)."""
    fig.update_layout(
        margin=dict(l=10, r=10, t=TOP_MARGIN if title else 40, b=10),
        height=height + 18 * legend_entries,
        legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
    )
    if title is not None:
        title = wrapped_title(title)
        if "<br>" in title:
            fig.update_layout(margin_t=TOP_MARGIN + 18)
        fig.update_layout(title=dict(text=title, x=0, xanchor="left", xref="paper", y=1, yanchor="bottom",
                                     yref="paper", pad=dict(b=14)))
    fig.update_xaxes(automargin=True, title_standoff=10)
    fig.update_yaxes(automargin=True, title_standoff=10)
    return fig


def wrapped_title(title: str) -> str:
    """A title too long for a half-width chart (the metric pages show two per row) gets
    its parenthesised part ("(lower is better; mean over images)") on a smaller second
    line instead of being cut at the chart's edge."""
    name, bracket, rest = title.partition(" (")
    if len(title) <= TITLE_LINE or not bracket or "<br>" in title:
        return title
    return f"{name}<br><sup>({rest}</sup>"
