"""The page of any registered metric: its settings (methods and the metric's own
parameters) in a form with Run, its figures and score table as the job produces them,
and one image under the metric. Built entirely from the metric registry, so a new
metric gets its page without writing one. Families that share a `page` (the sanity
checks) get one page together (`render_group`): one form, one Run, each family its
own job and its own block of results."""

from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from explain.analyses import MetricAnalysis, PreparedImages
from explain.analyses.maps import stored_maps
from explain.jobs import default_runner
from explain.metrics import MetricFamily, get_metric
from explain.methods.registry import MethodSpec
from explain.plots.curves import highlight_best, table_metrics

from . import jobs, report_builder, selection
from .session import kept, kept_widget
from reports import build_section

FIGURES_PER_ROW = 2


def _caption(metric: MetricFamily) -> str:
    return metric.description + " " + "; ".join(f"{s.name}: {s.direction}" for s in metric.scores) + "."


def _default_methods(metrics: Sequence[MetricFamily]) -> tuple[str, ...]:
    suggested = [m for metric in metrics for m in metric.suggested_methods]
    return tuple(dict.fromkeys([*suggested, *kept("methods", selection.DEFAULT_METHODS)]))


def render(metric_key: str, page: str) -> None:
    metric = get_metric(metric_key)
    st.title(metric.label)
    st.caption(_caption(metric))
    bundle, images, choice, labels = selection.page_setup()
    prepared = selection.prepared_images(bundle, images)

    with st.form(f"{page}_settings", border=False):
        methods = selection.method_picker(bundle, default=_default_methods([metric]), key=f"{page}:methods")
        with st.expander(f"{metric.label} settings"):
            params = selection.params_widgets(metric.key, metric.params, cost_of=selection.metric_cost(metric))
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    show_units = kept_widget(st.checkbox, "Show per-image curves", f"{page}:show_units", False)
    if not methods:
        st.info("Choose at least one method, then press Run.")
    metric_results(metric, page, prepared, prepared.subject(choice, labels), methods, params, run, show_units)


def render_group(keys: Sequence[str], page: str, title: str) -> None:
    """One page for several metric families: a method picker, per family a checkbox
    (run it or not) with its parameters, one Run; then each family's results."""
    metrics = [get_metric(k) for k in keys]
    st.title(title)
    intro = "Can these maps be trusted? " if title == "Sanity checks" else ""
    st.caption(intro + " ".join(f"**{m.label}**: {m.description}" for m in metrics))
    bundle, images, choice, labels = selection.page_setup()
    prepared = selection.prepared_images(bundle, images)
    if any(m.needs_masks for m in metrics) and prepared.masks is None:
        st.info("These metrics score maps against ground truth (where the evidence really is). Load a labelled "
                "dataset with its masks or boxes on the Model & data page, then choose its images in the sidebar.")
        return

    with st.form(f"{page}_settings", border=False):
        methods = selection.method_picker(bundle, default=_default_methods(metrics), key=f"{page}:methods")
        chosen, params = {}, {}
        for column, metric in zip(st.columns(len(metrics)), metrics, strict=True):
            with column:
                chosen[metric.key] = kept_widget(st.checkbox, metric.label, f"{page}:run:{metric.key}", True)
        for metric in metrics:
            with st.expander(f"{metric.label} settings"):
                params[metric.key] = selection.params_widgets(metric.key, metric.params,
                                                              cost_of=selection.metric_cost(metric))
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    show_units = kept_widget(st.checkbox, "Show per-image curves", f"{page}:show_units", False)
    if not methods:
        st.info("Choose at least one method, then press Run.")
    subject = prepared.subject(choice, labels)
    for metric in metrics:
        st.header(metric.label, divider="gray")
        st.caption(_caption(metric) + f" {metric.reference}")
        metric_results(metric, f"{page}:{metric.key}", prepared, subject, methods, params[metric.key],
                       run and chosen[metric.key], show_units)


def metric_results(
    metric: MetricFamily,
    page: str,
    prepared: PreparedImages,
    subject: Any,
    methods: tuple[MethodSpec, ...],
    params: dict[str, Any],
    run: bool,
    show_units: bool,
) -> None:
    """One family's analysis for these settings: started on `run`, drawn live (figures,
    score table, Add to report, the per-image view) while it matches them."""
    try:
        pending = MetricAnalysis.of(metric.key, subject, methods, params)
    except ValueError as exc:
        st.error(str(exc))
        return

    def draw(result, job) -> None:
        names = result.images.names
        for info in metric.scores:
            first = next(iter(result.curves.get(info.key, {}).values()), None)
            if first is not None and first.skipped:
                st.warning(
                    f"{info.short_name}: {len(first.skipped)} of {len(names)} image(s) skipped: "
                    + "; ".join(f"{names[s.index]}: {s.reason}" for s in first.skipped)
                )
        figures = list(result.figures(show_units).items())
        for start in range(0, len(figures), FIGURES_PER_ROW):
            row = figures[start : start + FIGURES_PER_ROW]
            for column, (key, figure) in zip(st.columns(min(len(figures), FIGURES_PER_ROW)), row, strict=False):
                column.plotly_chart(figure, key=f"{page}:{key}", config={"displaylogo": False})
        if figures:
            st.subheader("Scores")
            table = result.table()
            st.dataframe(highlight_best(table, table_metrics(result.curves)))
            st.caption(f"Over {len(names)} image(s); best in green. Explained classes: "
                       + ", ".join(f"{n}: {c}" for n, c in zip(names, result.images.target_names, strict=True)))
        if result.complete and result.analysis.methods and not job.active:  # buttons only once the job has ended
            report_builder.add_to_report(lambda: build_section(result, show_units), key=page)
            if metric.detail is not None:
                detail(result)

    def detail(result) -> None:
        st.subheader(metric.detail_title)
        c1, c2, c3 = st.columns([2, 2, 1])
        row = c1.selectbox("Image", range(len(result.images.names)), format_func=lambda i: result.images.names[i],
                           key=f"{page}:detail_image")
        idents = {s.ident: s.label for s in result.analysis.methods}
        ident = c2.selectbox("Method", list(idents), format_func=idents.get, key=f"{page}:detail_method")
        if not c3.button("Show", key=f"{page}:detail_show"):
            return
        spec = next(s for s in result.analysis.methods if s.ident == ident)
        maps = stored_maps(result.analysis.subject, [spec], default_runner().reader())
        if maps is None or prepared.bundle.model_id != result.analysis.subject.model_id:
            st.info("The maps of this run are not available for this model any more; press Run again.")
            return
        with st.spinner("Computing..."):
            strip = result.detail(prepared.select(list(result.analysis.subject.digests)), maps[ident], ident, row)
        st.image(list(strip.images), width=150, caption=list(strip.captions))
        if strip.note:
            st.caption(strip.note)

    def images_only() -> None:
        st.caption("Press Run to compute this for: " + ", ".join(prepared.names))

    jobs.follow(page, pending, prepared, run and bool(methods), draw, images_only)
