"""Datasets a data repository accepts (issue 15): the IOOS compliance checker (CF-1.10, ACDD-1.3)
on one file of each kind, citation metadata of an exported bundle, and CITATION.cff.

One tiny study is run once for the module (a 2 x 2 map, its enhancement dataset and a
steady-state map, n_fock 3, t_max 5; only the targets these tests need, about 30 s on 2 idle
cores), with the config's share: keys set except creator_url, which stays at its default so
that the export must name it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib

import pytest
import xarray as xr
import yaml

import qbcat
from qbcat.data import datasets
from qbcat.data.citation import PAPER_ARXIV, check_metadata
from qbcat.workflow.configuration import ConfigError, load_config

from conftest import REPO, job_counts, make_workspace, read_config, snakemake, write_config

SHARE = {
    "creator_name": "Tester, Ada",
    "creator_email": "ada@example.org",
    "creator_orcid": "0000-0002-1825-0097",
    "institution": "Example University",
    "license": "CC0-1.0",
}
STUDY = {
    "base": {"n_fock": 3, "t_max": 5.0, "n_t": 51},
    "sweeps": {"g_omega_c_map": {"axes": {"g": {"values": [0.1, 0.3]}, "omega_c": {"values": [0.8, 1.2]}}}},
    "build_products": True,
    "figures": {"paper_sweeps": []},
    "convergence": {"enabled": False},
    "steady": {"maps": {"m": {"sweep": "g_omega_c_map", "axes": {"g": [0.3]}}}, "late_periods": 2},
    "share": SHARE,
}
KINDS = {
    "point": None,  # the first point file, found in the fixture
    "sweep": "sweeps/g_omega_c_map.nc",
    "enhancement": "analysis/enhancement_g_omega_c_map.nc",
    "steady": "analysis/steady_m.nc",
}

# What the checker asks for that the project leaves out on purpose (docs/sharing.md says why).
#: The checker's own heuristic: a coordinate variable *named* time must have standard_name time.
#: CF-1.10 identifies a time coordinate by its units (4.4), and ours are "1" (dimensionless).
CF_NAME_HEURISTIC = "Coordinate variable 'time' should have standard_name='time', found: 'None'"
#: ACDD attributes with no honest value: no place on Earth, no calendar time, no CF standard
#: names for these quantities, no contributors beyond the creator, no issue date before publishing.
ACDD_LEFT_OUT = {
    "geospatial_bounds", "geospatial_bounds_crs", "geospatial_bounds_vertical_crs",
    "geospatial_lat_min", "geospatial_lat_max", "geospatial_lon_min", "geospatial_lon_max",
    "geospatial_vertical_min", "geospatial_vertical_max", "geospatial_vertical_positive",
    "geospatial_lat_units", "geospatial_lat_resolution", "geospatial_lon_units",
    "geospatial_lon_resolution", "geospatial_vertical_units", "geospatial_vertical_resolution",
    "time_coverage_start", "time_coverage_end", "time_coverage_duration", "time_coverage_resolution",
    "standard_name_vocabulary", "contributor_name", "contributor_role", "date_issued",
}
#: ... and, on the content-addressed point files only, who made and shares them.
ACDD_LEFT_OUT_POINT = {"creator_name", "creator_email", "creator_url", "institution", "license",
                       "publisher_name", "publisher_email", "publisher_url",
                       "acknowledgment/acknowledgement"}
#: What every dataset carries (ACDD discovery attributes the project knows).
ACDD_ALL = ("title", "summary", "keywords", "id", "naming_authority", "history", "comment",
            "date_created", "date_modified", "date_metadata_modified", "project", "processing_level",
            "references", "product_version", "source", "Conventions")
ACDD_SHARED = ("creator_name", "creator_email", "creator_url", "institution", "publisher_name",
               "publisher_email", "publisher_url", "license", "acknowledgement")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study, run once: (workspace, {kind: dataset path})."""
    ws = make_workspace(tmp_path_factory.mktemp("compliance"), STUDY)
    snakemake(ws, *[f"results/{rel}" for rel in KINDS.values() if rel], "results/config/config.yaml")
    results = ws / "results"
    files = {kind: results / rel for kind, rel in KINDS.items() if rel}
    files["point"] = sorted((results / "points").glob("*.nc"))[0]
    return ws, files


@pytest.fixture(scope="module")
def checker_report(study, tmp_path_factory):
    """The compliance checker's report (its json_new output, as the command line writes it) on
    one file of each kind: {kind: {"cf:1.10": ..., "acdd:1.3": ...}}."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    _, files = study
    CheckSuite.load_all_available_checkers()
    out = tmp_path_factory.mktemp("checker") / "report.json"
    ComplianceChecker.run_checker([str(f) for f in files.values()], ["cf:1.10", "acdd:1.3"], 0, "normal",
                                  output_filename=str(out), output_format="json_new")
    report = json.loads(out.read_text())
    by_kind = {kind: report[str(path)] for kind, path in files.items()}
    for kind, checks in by_kind.items():  # the scores, for docs/sharing.md (pytest -s shows them)
        print(f"{kind:<12} " + "  ".join(f"{name} {r['scored_points']}/{r['possible_points']}"
                                         for name, r in checks.items()))
    return by_kind


def failures(result: dict, priorities=("high", "medium", "low")) -> list[tuple[str, str]]:
    """(check name, message) of every failed check of one checker's result."""
    out = []
    for priority in priorities:
        for check in result[f"{priority}_priorities"]:
            if check["value"][0] < check["value"][1]:
                out.extend((check["name"], msg) for msg in check["msgs"] or ["(no message)"])
    return out


# ---------------------------------------------------------------------------------------------
# CF-1.10


@pytest.mark.parametrize("kind", list(KINDS))
def test_cf_has_no_error_but_the_checkers_name_heuristic_on_time(checker_report, kind):
    failed = failures(checker_report[kind]["cf:1.10"])
    assert {msg for _, msg in failed} <= {CF_NAME_HEURISTIC}, failed


def test_time_is_a_dimensionless_coordinate_not_a_cf_time(study):
    """CF-1.10 4.4: a time coordinate has units '<unit> since <epoch>'; ours is dimensionless
    (1/omega_0), so it must not claim to be one (no standard_name time, no axis T)."""
    _, files = study
    for kind in ("point", "sweep"):
        with xr.open_dataset(files[kind], decode_times=False) as ds:
            attrs = ds["time"].attrs
            assert attrs["units"] == "1" and attrs["long_name"] == "time"
            assert "standard_name" not in attrs and "axis" not in attrs and "calendar" not in attrs
            assert "1/omega_0" in attrs["comment"]
        with xr.open_dataset(files[kind]) as ds:  # plain xarray: a float coordinate, not dates
            assert ds["time"].dtype.kind == "f"


# ---------------------------------------------------------------------------------------------
# ACDD-1.3


@pytest.mark.parametrize("kind", list(KINDS))
def test_acdd_misses_only_what_is_left_out_on_purpose(checker_report, kind):
    left_out = ACDD_LEFT_OUT | (ACDD_LEFT_OUT_POINT if kind == "point" else set())
    for name, msg in failures(checker_report[kind]["acdd:1.3"]):
        if name.startswith("variable "):  # no CF standard names exist for these quantities
            assert msg == "standard_name", (name, msg)
        elif match := re.fullmatch(r"(?:Attr )?(\S+) (?:attribute )?(?:is )?not (?:present|found).*", msg):
            attr = match.group(1).split("/")[0] if "geospatial" in match.group(1) else match.group(1)
            assert attr in left_out or attr.replace("_min/max", "_min") in left_out, (name, msg)
        else:
            pytest.fail(f"unexpected ACDD failure: {name}: {msg}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_claimed_acdd_attribute_is_present(study, kind):
    _, files = study
    with xr.open_dataset(files[kind]) as ds:
        a = ds.attrs
        for attr in ACDD_ALL + (ACDD_SHARED if kind != "point" else ()):
            assert str(a.get(attr, "")).strip(), f"{kind}: {attr} missing or empty"
        assert PAPER_ARXIV in a["references"] and a["naming_authority"] == datasets.NAMING_AUTHORITY
        assert a["product_version"] == qbcat.__version__
        if kind == "point":
            assert a["id"] == f"qbcat-point-{a['point_id']}"
            assert "creator_name" not in a  # content-addressed: who computed it is not part of it
        else:
            assert re.fullmatch(rf"qbcat-{kind}-[\w-]+-[0-9a-f]{{16}}", a["id"]), a["id"]
            assert a["creator_name"] == SHARE["creator_name"] and a["institution"] == SHARE["institution"]
            assert a["license"] == "CC0-1.0" and a["creator_url"] == datasets.UNSET  # not set: the default
            assert a["publisher_name"] == SHARE["creator_name"]  # no publisher configured: the creator
        if kind == "enhancement":
            assert a["summary"].startswith("Ergotropy of the catalyzed qubit")  # its own, not the sweep's


def test_share_keys_rewrite_shared_datasets_but_rerun_no_simulation(study, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(study[0], ws, symlinks=True)
    config = read_config(ws)
    config["share"]["creator_name"] = "Someone, Else"
    write_config(ws, config)
    targets = [f"results/{rel}" for rel in KINDS.values() if rel]
    counts = job_counts(snakemake(ws, "-n", *targets).stdout)
    assert counts.get("aggregate_sweep") == 1 and counts.get("steady_map") == 1, counts
    assert not any(rule.startswith("simulate_batch") for rule in counts), counts


@pytest.mark.parametrize("key, value", [("creator_name", 7), ("creator_orcid", "0000-0002-1825")])
def test_the_schema_refuses_a_bad_share_value_before_any_job(repo, key, value):
    config = {**STUDY, "share": {**SHARE, key: value}}
    with pytest.raises(ConfigError, match=key):
        load_config(yaml.safe_load(yaml.safe_dump(config)), repo / "config" / "schema.yaml")
    good = {**STUDY, "share": {**SHARE, "creator_orcid": f"https://orcid.org/{SHARE['creator_orcid']}"}}
    load_config(yaml.safe_load(yaml.safe_dump(good)), repo / "config" / "schema.yaml")


def test_share_defaults_are_the_schema_defaults(repo):
    schema = yaml.safe_load((repo / "config" / "schema.yaml").read_text())
    props = schema["properties"]["share"]["properties"]
    assert {k: props[k]["default"] for k in datasets.SHARE_DEFAULTS} == datasets.SHARE_DEFAULTS
    assert all(props[k].get("description") for k in datasets.SHARE_DEFAULTS)
    shipped = yaml.safe_load((repo / "config" / "config.yaml").read_text())["share"]
    assert {k: v for k, v in shipped.items() if k in datasets.SHARE_DEFAULTS} == \
        {k: datasets.SHARE_DEFAULTS[k] for k in shipped if k in datasets.SHARE_DEFAULTS}


# ---------------------------------------------------------------------------------------------
# Export: DataCite / Zenodo metadata, and qbcat verify


def _qbcat(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "qbcat.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bundle(study, tmp_path_factory):
    """The study exported and unpacked: (folder, export stderr)."""
    ws, files = study
    out = tmp_path_factory.mktemp("bundle")
    proc = _qbcat("export", "--results", "results", "--config", "results/config/config.yaml",
                  "-o", out / "study.tar.gz", cwd=ws)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out / "study.tar.gz") as tar:
        tar.extractall(out, filter="data")
    return out / "study", proc.stderr


def test_export_names_the_share_keys_still_at_their_default(bundle):
    _, err = bundle
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "share.creator_url" in notes[0]
    assert "share.creator_name" not in notes[0] and "share.institution" not in notes[0]


def test_export_writes_datacite_and_zenodo_metadata(bundle, study):
    folder, _ = bundle
    datacite = json.loads((folder / "datacite.json").read_text())
    zenodo = json.loads((folder / "zenodo.json").read_text())
    with xr.open_dataset(study[1]["sweep"]) as sweep:
        commit, version = sweep.attrs["qbcat_git_commit"], sweep.attrs["qbcat_version"]
    creator = datacite["creators"][0]
    assert creator["name"] == SHARE["creator_name"]
    assert creator["affiliation"] == [{"name": SHARE["institution"]}]
    assert creator["nameIdentifiers"][0]["nameIdentifier"] == f"https://orcid.org/{SHARE['creator_orcid']}"
    assert datacite["rightsList"][0]["rightsIdentifier"] == "cc0-1.0" and zenodo["license"] == "cc0-1.0"
    assert datacite["types"]["resourceTypeGeneral"] == "Dataset" and zenodo["upload_type"] == "dataset"
    assert {"relatedIdentifier": PAPER_ARXIV, "relatedIdentifierType": "arXiv",
            "relationType": "References"} in datacite["relatedIdentifiers"]
    assert datacite["relatedItems"][0]["edition"] == version == zenodo["version"]
    technical = [d["description"] for d in datacite["descriptions"] if d["descriptionType"] == "TechnicalInfo"]
    assert commit in technical[0] and commit in zenodo["notes"]
    assert zenodo["creators"] == [{"name": SHARE["creator_name"], "affiliation": SHARE["institution"],
                                   "orcid": SHARE["creator_orcid"]}]
    assert any(r["identifier"] == PAPER_ARXIV for r in zenodo["related_identifiers"])
    assert check_metadata(folder / "datacite.json") == [] and check_metadata(folder / "zenodo.json") == []
    proc = _qbcat("verify", folder)
    assert proc.returncode == 0 and "2 metadata" in proc.stdout, proc.stdout + proc.stderr


def test_verify_names_missing_and_damaged_metadata(bundle, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(bundle[0], folder)
    record = json.loads((folder / "datacite.json").read_text())
    del record["creators"]
    record["relatedIdentifiers"] = []
    (folder / "datacite.json").write_text(json.dumps(record))
    (folder / "zenodo.json").unlink()
    proc = _qbcat("verify", folder)
    assert proc.returncode == 1
    lines = {line.split(": ", 1)[0]: line for line in proc.stdout.strip().splitlines()}
    assert set(lines) == {"datacite.json", "zenodo.json"}, proc.stdout
    assert "malformed: no creators with a name" in lines["datacite.json"]
    assert f"the paper ({PAPER_ARXIV}) is not among relatedIdentifiers" in lines["datacite.json"]
    assert "missing" in lines["zenodo.json"]

    # a bundle whose manifest does not list them at all (exported before they existed, or edited)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = [e for e in manifest["files"] if e["kind"] != "metadata"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "datacite.json").unlink()
    proc = _qbcat("verify", folder)
    assert proc.returncode == 1
    assert "datacite.json: missing (an exported bundle carries it" in proc.stdout
    assert "zenodo.json: missing (an exported bundle carries it" in proc.stdout


def test_export_refuses_a_share_value_that_is_not_text(study, tmp_path):
    ws, _ = study
    config = yaml.safe_load((ws / "results" / "config" / "config.yaml").read_text())
    config["share"]["creator_orcid"] = "not-an-orcid"
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = _qbcat("export", "--results", ws / "results", "--config", bad, "-o", tmp_path / "x.tar.gz")
    assert proc.returncode == 2 and "share.creator_orcid" in proc.stderr
    assert not (tmp_path / "x.tar.gz").exists()


# ---------------------------------------------------------------------------------------------
# CITATION.cff


def test_citation_cff_describes_this_version_of_the_software():
    """CFF 1.2.0 required keys and the values that must follow the package (checked in full
    against the CFF schema with cffconvert --validate, docs/sharing.md)."""
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0"
    assert cff["message"] and cff["title"] and cff["authors"] and cff["type"] == "software"
    assert str(cff["version"]) == project["version"] == qbcat.__version__
    assert cff["license"] == project["license"]["text"]
    assert any(i["value"] == PAPER_ARXIV for ref in cff["references"] for i in ref["identifiers"])
