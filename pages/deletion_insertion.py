"""Deletion & insertion curves (Petsiuk et al., RISE) for the selected images, class and methods."""

from pages.ui.metric_page import render

render("deletion_insertion", page="deletion_insertion")
