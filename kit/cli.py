"""``kit`` on the command line: a thin layer over :mod:`kit.figures` and :mod:`kit.doctor`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml


def _parse_value(text: str):
    """A ``-p`` value as YAML: ``3`` is an int, ``0.5`` and ``1e-3`` floats, ``true`` a bool, else a string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kit", description="Regenerate paper figures and check the environment.")
    commands = parser.add_subparsers(dest="command", required=True)
    figures = commands.add_parser("figures", help="the paper figures").add_subparsers(dest="action", required=True)
    figures.add_parser("list", help="one figure a line: <paper>/<figure-id>, notebook, caption")
    figures.add_parser("check", help="validate the registry against the notebooks' parameters")
    build = figures.add_parser("build", help="execute the notebooks and write figures, data, executed notebooks")
    build.add_argument("--paper", help="only this paper's figures")
    build.add_argument("--figure", help="only this figure (id or paper/id)")
    build.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    build.add_argument("--smoke", action="store_true", help="use the notebooks' smoke-sized defaults")
    build.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="override"
    )
    build.add_argument(
        "--output",
        type=Path,
        help="folder for the outputs (default: the paper's; papers/<paper>/scratch with -p or --smoke)",
    )
    build.add_argument(
        "--dry-run", action="store_true", help="check the parameters and say where outputs go; run nothing"
    )
    report = figures.add_parser(
        "report", help="render each paper's measured results from its figure data into its README"
    )
    report.add_argument("--paper", help="only this paper")
    commands.add_parser("doctor", help="check that this environment can run and explore the kit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # which notebook runs is the progress bar's job
    if args.command == "doctor":
        from kit import doctor

        return doctor.main()
    from kit import figures

    try:
        registry = figures.load_registry()
        if args.action == "list":
            for fig in registry:
                sys.stdout.write(f"{fig.key}\t{fig.notebook.name}\t{fig.caption}\n")
            return 0
        if args.action == "check":
            problems = figures.check(registry)
            for problem in problems:
                sys.stderr.write(f"{problem}\n")
            sys.stdout.write(f"{len(registry)} figure(s), {len(problems)} problem(s)\n")
            return 1 if problems else 0
        if args.action == "report":
            from kit import paths, report

            changed = report.report(figures.select(registry, args.paper), paths.papers())
            sys.stdout.write("".join(f"updated {path}\n" for path in changed) or "results unchanged\n")
            return 0
        chosen = figures.select(registry, args.paper, args.figure)
        overrides = {name: _parse_value(value) for name, value in args.parameter}
        options = {"overrides": overrides, "smoke": args.smoke, "output_root": args.output}
        jobs = figures.plan(chosen, **options)
        for job in jobs if args.dry_run else []:
            chosen_values = json.dumps(job.parameters, default=str) if job.parameters else "the notebook's defaults"
            sys.stderr.write(f"{job.figure.key}: {chosen_values} -> {job.files['data'].parents[1]}\n")
        for where in sorted({str(job.files["data"].parents[1]) for job in jobs if job.scratch}):
            sys.stderr.write(f"-p/--smoke outputs go to {where} (the paper's own figures are untouched)\n")
        if args.dry_run:
            return 0
        built = figures.run(jobs, force=args.force)
        sys.stdout.write("".join(f"{path}\n" for path in built))
        return 0
    except (figures.FigureError, FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"kit: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
