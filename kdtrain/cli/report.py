"""`kdtrain report`: regenerate the results report of a pipeline run from its summary files and the
experiment's report config (pipeline.yaml beside the Makefile)."""

from __future__ import annotations

from pathlib import Path

import click


def report_cmd(runs: Path, data: Path, out: Path, config: Path | None, title: str | None, notes: Path | None) -> None:
    """Write the results report (table, figures, targets, commands) of a pipeline run."""
    from kdtrain.errors import KDError
    from kdtrain.report.results import load_config, write_report
    from kdtrain.train.config import check_out_folder

    if notes is not None and not notes.exists():
        raise KDError(f"--notes {notes}: no such file")
    check_out_folder(out.parent, "--out's folder")
    click.echo(write_report(runs, data, out, title, notes, load_config(config)))


def _options() -> list:
    # built per call: click consumes the options a decorator attaches, so each group needs fresh ones
    return [
        click.option("--runs", required=True, type=click.Path(path_type=Path, file_okay=False),
                     help="Run folder of the pipeline, e.g. runs/full (teacher/, students/SET/, scores/, sheets/)."),
        click.option("--data", required=True, type=click.Path(path_type=Path, file_okay=False),
                     help="Folder of the surrogate sets' shards and manifests, e.g. data/full."),
        click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
                     help="Markdown file to write; figures go to OUT's stem + '_files/' beside it."),
        click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="The experiment: set order, aliases, reference set, targets, paper comparison (YAML, "
                          "e.g. pipeline.yaml) [default: sets by name, no targets]."),
        click.option("--title", default=None, help="Page title [default: the config's]."),
        click.option("--notes", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Markdown included verbatim at the end [default: RUNS/NOTES.md if present]."),
    ]


def register(group) -> None:
    """Add `report` to the `kdtrain` click group."""
    fn = report_cmd
    for opt in reversed(_options()):
        fn = opt(fn)
    group.command("report", help=report_cmd.__doc__)(fn)
