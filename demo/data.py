"""The demo's HR file: 1,000 generated people with the mistakes a real HR export has.

The people come from :func:`bench.generate.generate_people` (departments, titles,
managers — every eighth person leads a team —, about 5 % Terminated). Then, as in
real life:

- a few employee ids were given to two people: a second person, with a name and an
  account of their own, right after the first one — the import rejects both copies
  (``duplicate_object``) until HR fixes the file;
- one row was cut short: it has 4 of the 15 columns — the import reports it
  (``invalid_data``, naming the line) and reads on.

The same seed gives the same file, byte for byte.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bench.generate import COLUMNS, LEAD_EVERY, employee_id, generate_people

PEOPLE = 1000
#: The people whose employee id is given to a second person too (none leads a team,
#: so no one's manager goes missing with them).
DUPLICATED = (101, 402, 703)
#: The cut-short row comes after this person.
MALFORMED_AFTER = 500


@dataclass(frozen=True)
class HrFile:
    """What :func:`write_hr_csv` wrote."""

    path: Path
    people: int  # well-formed rows, duplicates included
    duplicate_ids: tuple[str, ...]
    malformed_line: int  # the cut-short row's line number (the header is line 1)


def write_hr_csv(path: Path, people: int = PEOPLE, *, seed: int = 42) -> HrFile:
    """Write the HR file to ``path`` (UTF-8, comma-separated) and say what is in it."""
    duplicated = [index for index in DUPLICATED if index < people]
    assert all(index % LEAD_EVERY for index in duplicated), "a team lead is never duplicated"
    # The extra people (the second holders of the duplicated ids, the cut-short row)
    # are generated after the real ones, so they have names and accounts of their own.
    rows = list(generate_people(people + len(duplicated) + 1, seed=seed))
    real, extra = rows[:people], rows[people:]
    second_holders = dict(zip(duplicated, extra, strict=False))
    cut_short = extra[-1]

    path.parent.mkdir(parents=True, exist_ok=True)
    line = 1
    malformed_line = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        plain = csv.writer(handle, lineterminator="\n")
        writer.writeheader()
        for index, person in enumerate(real):
            writer.writerow(person)
            line += 1
            if index in second_holders:
                writer.writerow({**second_holders[index], "employeeId": person["employeeId"]})
                line += 1
            if index == min(MALFORMED_AFTER, people - 1):
                plain.writerow([cut_short[column] for column in COLUMNS[:4]])
                line += 1
                malformed_line = line
    return HrFile(
        path=path,
        people=people + len(duplicated),
        duplicate_ids=tuple(employee_id(index) for index in duplicated),
        malformed_line=malformed_line,
    )
