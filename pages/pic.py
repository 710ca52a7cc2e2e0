"""SIC / AIC performance information curves (Kapishnikov et al., XRAI) for the selected images and methods."""

from pages.ui.metric_page import render

render("sic_aic", page="pic")
