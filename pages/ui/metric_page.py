"""The page of any registered metric: its settings (methods and the metric's own
parameters) in a form with Run, its curves and score table as the job produces them,
and what the model saw for one image. Built entirely from the metric registry, so a
new metric gets its page without writing one."""

from __future__ import annotations

import streamlit as st

from explain.analyses import MetricAnalysis
from explain.analyses.maps import stored_maps
from explain.jobs import default_runner
from explain.metrics import get_metric
from explain.plots.curves import highlight_best, table_metrics

from . import jobs, report_builder, selection
from .session import kept, kept_widget


def render(metric_key: str, page: str) -> None:
    metric = get_metric(metric_key)
    st.title(metric.label)
    st.caption(metric.description + " " + "; ".join(f"{s.name}: {s.direction}" for s in metric.scores) + ".")
    bundle, images, choice, labels = selection.page_setup()
    prepared = selection.prepared_images(bundle, images)

    with st.form(f"{page}_settings", border=False):
        default = dict.fromkeys([*metric.suggested_methods, *kept("methods", selection.DEFAULT_METHODS)])
        methods = selection.method_picker(bundle, default=tuple(default), key=f"{page}:methods")
        with st.expander(f"{metric.label} settings"):
            params = selection.params_widgets(metric.key, metric.params)
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    show_units = kept_widget(st.checkbox, "Show per-image curves", f"{page}:show_units", False)

    try:
        pending = MetricAnalysis.of(metric.key, prepared.subject(choice, labels), methods, params)
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    if not methods:
        st.info("Choose at least one method, then press Run.")

    def draw(result, job) -> None:
        names = result.images.names
        for info in metric.scores:
            first = next(iter(result.curves.get(info.key, {}).values()), None)
            if first is not None and first.skipped:
                st.warning(f"{info.short_name}: {len(first.skipped)} of {len(names)} image(s) skipped, as the reference "
                           "does: " + "; ".join(f"{names[s.index]}: {s.reason}" for s in first.skipped))
        figures = result.figures(show_units)
        for column, (key, figure) in zip(st.columns(max(1, len(figures))), figures.items()):
            column.plotly_chart(figure, key=f"{page}:{key}", config={"displaylogo": False})
        if figures:
            st.subheader("Scores")
            table = result.table()
            st.dataframe(highlight_best(table, table_metrics(result.curves)))
            st.caption(f"Over {len(names)} image(s); best in green. Explained classes: "
                       + ", ".join(f"{n}: {c}" for n, c in zip(names, result.images.target_names)))
        if result.complete and result.analysis.methods and not job.active:  # buttons only once the job has ended
            report_builder.add_to_report(lambda: result.report_section(show_units), key=page)
            if metric.detail is not None:
                detail(result)

    def detail(result) -> None:
        st.subheader("What the model saw")
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
        strip = result.detail(prepared.select(list(result.analysis.subject.digests)), maps[ident], ident, row)
        st.image(list(strip.images), width=150, caption=list(strip.captions))
        if strip.note:
            st.caption(strip.note)

    def images_only() -> None:
        st.caption("Press Run to compute the curves for: " + ", ".join(prepared.names))

    jobs.follow(page, pending, prepared, run and bool(methods), draw, images_only)
