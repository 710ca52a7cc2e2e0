"""Sanity checks: every metric family registered for this page (model randomisation,
random logit, method agreement, robustness), one form and one Run for all of them."""

from explain.metrics import list_metrics
from explain.metrics.randomisation import SANITY_PAGE
from pages.ui.metric_page import render_group

render_group(tuple(m.key for m in list_metrics() if m.page == SANITY_PAGE), page="sanity_checks", title=SANITY_PAGE)
