"""Which function builds the report section of which backend result.

The backend (`explain/`) knows nothing of reports: its results expose plain data
(figures, tables, image strips). Here each result type is mapped to the one function
that turns such a result into a `Section`; `build_section` picks it by the result's
type (the nearest registered class along its MRO, so a subclass reuses its parent's
builder unless it registers its own).

Adding a section for a new result type is one function and one registration:

    @section_builder(MyResult)
    def my_section(result: MyResult, title: str = "Mine") -> Section: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:  # sections.py registers its builders through this module: no import cycle at run time
    from .sections import Section

Result = TypeVar("Result")
Builder = TypeVar("Builder", bound=Callable[..., "Section"])

SECTION_BUILDERS: dict[type, Callable[..., "Section"]] = {}


def section_builder(result_type: type) -> Callable[[Builder], Builder]:
    """Decorator: `build` makes the section of results of `result_type` (one builder per type)."""

    def register(build: Builder) -> Builder:
        if result_type in SECTION_BUILDERS:
            raise ValueError(f"a report section builder for {result_type.__name__} is registered twice")
        SECTION_BUILDERS[result_type] = build
        return build

    return register


def builder_for(result_type: type) -> Callable[..., "Section"]:
    """The builder registered for `result_type` or its nearest registered base class."""
    for cls in result_type.__mro__:
        if cls in SECTION_BUILDERS:
            return SECTION_BUILDERS[cls]
    raise TypeError(
        f"no report section for a {result_type.__name__}: register a builder with "
        f"@section_builder({result_type.__name__}) in reports/ (see README, 'Adding a report section')"
    )


def build_section(result: Any, *args: Any, **options: Any) -> "Section":
    """The report section of a backend result; `args`/`options` go to its builder (display choices)."""
    return builder_for(type(result))(result, *args, **options)
