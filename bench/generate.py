"""Generate realistic HR data: N people with ~15 attributes, as rows or a CSV file.

Deterministic for a given seed, streamed (constant memory whatever N), and reusable
by any benchmark or test that needs a large HR file::

    from bench.generate import write_people_csv, PEOPLE_ATTRIBUTES
    write_people_csv(path, 100_000)

or from the shell: ``python -m bench.generate --people 100000 hr.csv``.

Every eighth person is a team lead; everyone else reports to a lead chosen at random
from the whole file, so about half of the ``managerId`` references point further
down the file (the import has to resolve them after the last page).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COLUMNS = [
    "employeeId",
    "firstName",
    "lastName",
    "displayName",
    "accountName",
    "mail",
    "department",
    "title",
    "location",
    "phone",
    "status",
    "startDate",
    "costCentre",
    "company",
    "managerId",
]

#: The attribute declarations of the generated file, as in the YAML configuration.
PEOPLE_ATTRIBUTES: dict[str, Any] = {
    "startDate": {"type": "datetime"},
    "managerId": {"type": "reference", "references": "person"},
}

FIRST_NAMES = [
    "Alice",
    "Bob",
    "Carol",
    "David",
    "Erin",
    "Frank",
    "Grace",
    "Heidi",
    "Ivan",
    "Judy",
    "Karl",
    "Laura",
    "Mallory",
    "Niaj",
    "Olivia",
    "Peggy",
    "Quentin",
    "Rupert",
    "Sybil",
    "Trent",
    "Uma",
    "Victor",
    "Wendy",
    "Xavier",
    "Yvonne",
    "Zoë",
    "Ørjan",
    "Siân",
    "Renée",
    "Björn",
    "Chloé",
    "Dmitri",
    "Aoife",
    "Kwame",
    "Priya",
    "Mateo",
    "Hana",
    "Lars",
    "Ines",
    "Tomasz",
]
LAST_NAMES = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Müller",
    "García",
    "O'Brien",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Novak",
    "Dubois",
    "Andersen",
    "Okafor",
    "Tanaka",
    "Silva",
    "Horvat",
    "Ivanova",
    "Costa",
    "Murphy",
    "Kelly",
    "Byrne",
]
DEPARTMENTS = [
    "Sales",
    "Marketing",
    "Finance",
    "Engineering",
    "Support",
    "Legal",
    "HR",
    "Operations",
    "Research",
    "Facilities",
    "Procurement",
    "Security",
]
TITLES = [
    "Analyst",
    "Engineer",
    "Manager",
    "Director",
    "Consultant",
    "Specialist",
    "Coordinator",
    "Officer",
]
LOCATIONS = [
    "London",
    "Manchester",
    "Leeds",
    "Glasgow",
    "Cardiff",
    "Belfast",
    "Dublin",
    "Paris",
    "Berlin",
    "Madrid",
]
COMPANIES = ("JIM Ltd", "JIM Services Ltd", "JIM Europe GmbH")
LEAD_EVERY = 8
FIRST_ID = 100_000


def employee_id(index: int) -> str:
    return f"E{FIRST_ID + index}"


def generate_people(count: int, *, seed: int = 42) -> Iterator[dict[str, str]]:
    """``count`` people as dicts of the CSV's columns, one at a time."""
    rng = random.Random(seed)
    leads = max(count // LEAD_EVERY, 1)
    start = dt.date(2000, 1, 1)
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        account = f"{first[:1]}{last}{index}".lower().replace("'", "")
        manager = rng.randrange(leads) * LEAD_EVERY
        department = rng.choice(DEPARTMENTS)
        yield {
            "employeeId": employee_id(index),
            "firstName": first,
            "lastName": last,
            "displayName": f"{first} {last}",
            "accountName": account,
            "mail": f"{account}@example.org",
            "department": department,
            "title": f"{rng.choice(TITLES)}, {department}",
            "location": rng.choice(LOCATIONS),
            "phone": f"+44 20 {rng.randrange(10_000_000):07d}",
            "status": "Active" if rng.random() < 0.95 else "Terminated",
            "startDate": (start + dt.timedelta(days=rng.randrange(9000))).isoformat(),
            "costCentre": f"CC{rng.randrange(1000):04d}",
            "company": rng.choice(COMPANIES),
            "managerId": "" if manager == index else employee_id(manager),
        }


def write_people_csv(path: Path, count: int, *, seed: int = 42) -> Path:
    """Write ``count`` generated people to ``path`` (UTF-8, comma-separated)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(generate_people(count, seed=seed))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="The CSV file to write.")
    parser.add_argument("--people", type=int, default=100_000, help="How many (100,000).")
    parser.add_argument("--seed", type=int, default=42)
    options = parser.parse_args(argv)
    write_people_csv(options.path, options.people, seed=options.seed)


if __name__ == "__main__":
    main()
