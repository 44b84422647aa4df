"""`kdtrain report`: regenerate the results report of a set of runs from their summary files and the
experiment's report config (e.g. pipeline.yaml beside the Makefile)."""

from __future__ import annotations

from pathlib import Path

import click


def report_cmd(runs: Path, data: Path, out: Path, config: Path | None, title: str | None, notes: Path | None) -> None:
    """Write the results report (table, figures, targets, commands) of a set of runs."""
    from kdtrain.errors import KDError
    from kdtrain.report.config import load_config
    from kdtrain.report.document import write_report
    from kdtrain.train.config import check_out_folder

    if notes is not None and not notes.exists():
        raise KDError(f"--notes {notes}: no such file")
    conf = load_config(config)  # checked before anything is written
    check_out_folder(out.parent, "--out's folder")
    click.echo(write_report(runs, data, out, title, notes, conf))


def _options() -> list:
    # built per call: click consumes the options a decorator attaches, so each group needs fresh ones
    return [
        click.option("--runs", required=True, type=click.Path(path_type=Path, file_okay=False),
                     help="Run folder, e.g. runs/full; the config's layout says what lies where in it [default "
                          "layout: one student run folder per set]."),
        click.option("--data", required=True, type=click.Path(path_type=Path, file_okay=False),
                     help="Folder of the surrogate sets' shards and manifests, e.g. data/full."),
        click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
                     help="Markdown file to write; figures go to OUT's stem + '_files/' beside it."),
        click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="The experiment: run layout, reference set, set order, aliases, targets, paper comparison "
                          "(YAML, e.g. pipeline.yaml) [default: sets by name, no reference, no targets]."),
        click.option("--title", default=None, help="Page title [default: the config's]."),
        click.option("--notes", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Markdown included verbatim at the end [default: the layout's notes file, if present]."),
    ]


def register(group) -> None:
    """Add `report` to the `kdtrain` click group."""
    fn = report_cmd
    for opt in reversed(_options()):
        fn = opt(fn)
    group.command("report", help=report_cmd.__doc__)(fn)
