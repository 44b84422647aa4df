"""`kdtrain report`: regenerate the results report of a set of runs from their summary files and the
experiment's report config (e.g. pipeline.yaml beside the Makefile)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from kdgen.settings import dataclass_options, knob


@dataclass
class ReportOptions:
    runs: Path | None = knob(None, "Run folder, e.g. runs/full; the config's layout says what lies where in it "
                                   "[default layout: one student run folder per set].", required=True, file_okay=False)
    data: Path | None = knob(None, "Folder of the surrogate sets' shards and manifests, e.g. data/full.",
                             required=True, file_okay=False)
    out: Path | None = knob(None, "Markdown file to write; figures go to OUT's stem + '_files/' beside it.",
                            required=True, dir_okay=False)
    config: Path | None = knob(None, "The experiment: run layout, reference set, set order, aliases, targets, paper "
                                     "comparison (YAML, e.g. pipeline.yaml) [default: sets by name, no reference, no "
                                     "targets].", dir_okay=False)
    title: str | None = knob(None, "Page title [default: the config's].")
    notes: Path | None = knob(None, "Markdown included verbatim at the end [default: the layout's notes file, if "
                                    "present].", dir_okay=False)


def report_cmd(runs: Path, data: Path, out: Path, config: Path | None, title: str | None, notes: Path | None) -> None:
    """Write the results report (table, figures, targets, commands) of a set of runs."""
    from kdtrain.errors import UserError
    from kdtrain.report.config import load_config
    from kdtrain.report.document import write_report
    from kdtrain.train.config import check_out_folder

    if notes is not None and not notes.exists():
        raise UserError(f"--notes {notes}: no such file")
    conf = load_config(config)  # checked before anything is written
    check_out_folder(out.parent, "--out's folder")
    click.echo(write_report(runs, data, out, title, notes, conf))


def register(group) -> None:
    """Add `report` to the `kdtrain` click group."""
    group.command("report", help=report_cmd.__doc__)(dataclass_options(ReportOptions)(report_cmd))
