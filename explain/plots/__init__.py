"""Pictures and plotly figures: map overlays, metric curves and tables, SHAP plots.
Display only; numbers always come from the raw maps."""
