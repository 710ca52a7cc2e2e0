"""What the comparison, the mistakes view and the PDF cost on a results directory (the
README's three-checkpoint MNIST example by default): reading the stored maps and
computing every similarity, per image and pair of models; building the sections; and
printing the report to PDF against rendering its HTML (a ratio, one run, medians).

    python bench/bench_compare.py [results/mnist-3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_seconds  # noqa: E402
from explain.analyses import comparison_from_results, mistakes_from_results  # noqa: E402
from explain.evaluation import EvaluationResult  # noqa: E402
from reports import Report, render_report  # noqa: E402
from reports.pdf import write_pdf  # noqa: E402
from reports.sections_compare import compare_section, mistakes_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results/mnist-3")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = EvaluationResult.open(args.results)
    comparison = comparison_from_results(run)
    pairs = len(comparison.pairs) * len(comparison.image_names) * len(comparison.labels)
    compare_s = median_seconds(lambda: comparison_from_results(run).similarity, args.repeats)
    print(f"comparison of {len(run.models)} models x {len(comparison.image_names)} images x {len(comparison.labels)} "
          f"methods: {compare_s:.2f} s ({1000 * compare_s / pairs:.2f} ms per map pair, four similarities)")
    mistakes = mistakes_from_results(run)
    sections_s = median_seconds(lambda: (compare_section(comparison), mistakes_section(mistakes)), args.repeats)
    report = Report.assemble("Comparison", [compare_section(comparison), mistakes_section(mistakes)])
    html_s = median_seconds(lambda: render_report(report), args.repeats)
    html = render_report(report)
    with tempfile.TemporaryDirectory() as folder:
        pdf_s = median_seconds(lambda: write_pdf(html, Path(folder) / "r.pdf"), args.repeats)
        size = (Path(folder) / "r.pdf").stat().st_size
    print(f"sections {sections_s:.2f} s; HTML {html_s:.2f} s ({len(html) / 2**20:.1f} MB); "
          f"PDF {pdf_s:.2f} s ({size / 2**20:.1f} MB), {pdf_s / html_s:.1f}x the HTML")


if __name__ == "__main__":
    main()
