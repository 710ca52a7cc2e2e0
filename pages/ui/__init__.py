"""Widgets and session state shared by the pages (no numerics: those live in `explain`)."""
