"""Repository metadata of an exported bundle: ``datacite.json`` and ``zenodo.json``.

``qbcat export`` writes both into the bundle, next to ``manifest.json``, from the config's
``share:`` keys (the same that go into the datasets, :data:`qbcat.data.datasets.SHARE_DEFAULTS`) and from
the provenance attributes of the bundle's datasets:

- ``datacite.json``: the ``attributes`` of a DataCite (metadata schema 4) record, as the DataCite
  REST API takes them: titles, creators (with affiliation and ORCID iD when configured),
  publisher, publication year, resource type Dataset, rights (license), subjects, descriptions
  (what the bundle holds; the software versions and git commits that made the data), the paper
  as a related identifier (arXiv:2512.07906, relation ``References``) and the qbcat software as a
  related item (relation ``IsCompiledBy``, its version as the edition).
- ``zenodo.json``: the deposit metadata Zenodo takes (``upload_type`` dataset, title, creators,
  description, license, keywords, related identifiers, references, version, notes).

Neither holds a DOI: a repository mints one when the bundle is published. :func:`check_metadata`
is what ``qbcat verify`` runs on them; an exported bundle without them fails verification.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from .datasets import REFERENCES, UNSET, share_settings

PAPER_ARXIV = "arXiv:2512.07906"
DATACITE_NAME = "datacite.json"
ZENODO_NAME = "zenodo.json"
METADATA_FILES = (DATACITE_NAME, ZENODO_NAME)
KEYWORDS = ["quantum battery", "quantum catalysis", "ergotropy", "open quantum system",
            "Lindblad master equation", "QuTiP"]
#: share: keys whose default ("unknown") must be replaced before a bundle is published.
MUST_SET = ("creator_name", "creator_email", "creator_url", "institution")
_SPDX = re.compile(r"^[A-Za-z0-9.+-]+$")
_ORCID = re.compile(r"^(https://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")


def unset_keys(share: dict | None) -> list[str]:
    """The ``share:`` keys of :data:`MUST_SET` still at their default (``unknown``)."""
    settings = share_settings(share)
    return [key for key in MUST_SET if settings[key] in ("", UNSET)]


def _orcid(value: str) -> str | None:
    """The bare ORCID iD of ``value`` (with or without https://orcid.org/), None if empty;
    ValueError naming share.creator_orcid if it is not one."""
    if not value:
        return None
    match = _ORCID.match(value)
    if not match:
        raise ValueError(f"share.creator_orcid: {value!r} is not an ORCID iD (0000-0000-0000-0000)")
    return match.group(2)


def _software_text(software: list[dict]) -> str:
    return "; ".join(f"qbcat {s.get('qbcat_version', '?')} (git commit {s.get('qbcat_git_commit', '?')}, "
                     f"{s.get('qbcat_git_state', '?')}), QuTiP {s.get('qutip_version', '?')}"
                     for s in software) or "unknown"


def records(share: dict | None, *, name: str, counts: dict[str, int], software: list[dict],
            created: str | None = None) -> tuple[dict, dict]:
    """(datacite, zenodo) records of a bundle named ``name`` holding ``counts`` files by kind,
    made with the ``software`` versions listed (one dict of qbcat_version, qbcat_git_commit,
    qbcat_git_state, qutip_version per distinct version found in its datasets)."""
    s = share_settings(share)
    orcid = _orcid(s["creator_orcid"])
    created = created or datetime.now(timezone.utc).strftime("%Y-%m-%d")
    title = f"qbcat study results ({name}): catalysis-enhanced qubit quantum battery"
    held = ", ".join(f"{n} {kind} file{'s' if n != 1 else ''}" for kind, n in sorted(counts.items()))
    description = (
        "Simulations of a driven qubit quantum battery coupled to a harmonic-oscillator catalyst "
        "under dephasing and photon loss (Lindblad master equation, QuTiP), after "
        f"{REFERENCES}. The bundle holds the sweep datasets (NetCDF, CF-1.10 and ACDD-1.3), "
        "analysis products, figures, the claims report, the exact config and manifest.json with "
        f"the sha256 of every file ({held}); `qbcat verify` checks it.")
    software_text = _software_text(software)
    versions = sorted({v.get("qbcat_version", "?") for v in software}) or ["unknown"]
    publisher = s["publisher_name"] or s["creator_name"]
    license_id = s["license"]

    creator = {"name": s["creator_name"], "nameType": "Personal"}
    if s["institution"] not in ("", UNSET):
        creator["affiliation"] = [{"name": s["institution"]}]
    if orcid:
        creator["nameIdentifiers"] = [{"nameIdentifier": f"https://orcid.org/{orcid}",
                                       "nameIdentifierScheme": "ORCID", "schemeUri": "https://orcid.org"}]
    rights = {"rights": license_id}
    if _SPDX.match(license_id):
        rights.update(rightsIdentifier=license_id.lower(), rightsIdentifierScheme="SPDX",
                      schemeUri="https://spdx.org/licenses/")
    datacite = {
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Simulation results"},
        "titles": [{"title": title}],
        "creators": [creator],
        "publisher": publisher,
        "publicationYear": created[:4],
        "dates": [{"date": created, "dateType": "Created"}],
        "subjects": [{"subject": k} for k in KEYWORDS],
        "rightsList": [rights],
        "descriptions": [
            {"description": description, "descriptionType": "Abstract"},
            {"description": f"Made with {software_text}.", "descriptionType": "TechnicalInfo"},
        ],
        "relatedIdentifiers": [{"relatedIdentifier": PAPER_ARXIV, "relatedIdentifierType": "arXiv",
                                "relationType": "References"}],
        "relatedItems": [{"relatedItemType": "Software", "relationType": "IsCompiledBy",
                          "titles": [{"title": "qbcat"}], "edition": ", ".join(versions)}],
        "language": "en",
    }
    zenodo_creator = {"name": s["creator_name"]}
    if "affiliation" in creator:
        zenodo_creator["affiliation"] = s["institution"]
    if orcid:
        zenodo_creator["orcid"] = orcid
    zenodo = {
        "upload_type": "dataset",
        "title": title,
        "creators": [zenodo_creator],
        "description": description,
        "access_right": "open",
        "license": license_id.lower() if _SPDX.match(license_id) else license_id,
        "keywords": KEYWORDS,
        "related_identifiers": [{"identifier": PAPER_ARXIV, "relation": "references",
                                 "scheme": "arxiv", "resource_type": "publication-preprint"}],
        "references": [REFERENCES],
        "version": ", ".join(versions),
        "publication_date": created,
        "notes": f"Made with {software_text}.",
    }
    return datacite, zenodo


# ---------------------------------------------------------------------------------------------
# Checks (qbcat verify)


def _nonempty_str(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def check_datacite(record) -> list[str]:
    """What a datacite.json record lacks (empty if complete)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    out = []
    titles = record.get("titles")
    if not (isinstance(titles, list) and titles
            and all(isinstance(t, dict) and _nonempty_str(t.get("title")) for t in titles)):
        out.append("no title (titles[].title)")
    creators = record.get("creators")
    if not (isinstance(creators, list) and creators
            and all(isinstance(c, dict) and _nonempty_str(c.get("name")) for c in creators)):
        out.append("no creators with a name")
    if not _nonempty_str(record.get("publisher")):
        out.append("no publisher")
    if not re.fullmatch(r"\d{4}", str(record.get("publicationYear", ""))):
        out.append("no publicationYear (YYYY)")
    if (record.get("types") or {}).get("resourceTypeGeneral") != "Dataset":
        out.append("types.resourceTypeGeneral is not Dataset")
    rights = record.get("rightsList")
    if not (isinstance(rights, list) and rights and all(isinstance(r, dict) and _nonempty_str(r.get("rights"))
                                                        for r in rights)):
        out.append("no license (rightsList[].rights)")
    related = record.get("relatedIdentifiers") or []
    if not any(isinstance(r, dict) and r.get("relatedIdentifier") == PAPER_ARXIV for r in related):
        out.append(f"the paper ({PAPER_ARXIV}) is not among relatedIdentifiers")
    items = record.get("relatedItems") or []
    if not any(isinstance(i, dict) and i.get("relatedItemType") == "Software" and _nonempty_str(i.get("edition"))
               for i in items):
        out.append("no software related item with its version (relatedItems[].edition)")
    technical = [d.get("description", "") for d in record.get("descriptions") or []
                 if isinstance(d, dict) and d.get("descriptionType") == "TechnicalInfo"]
    if not any("git commit" in str(d) for d in technical):
        out.append("no TechnicalInfo description with the software's git commit")
    return out


def check_zenodo(record) -> list[str]:
    """What a zenodo.json record lacks (empty if complete)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    out = []
    if record.get("upload_type") != "dataset":
        out.append("upload_type is not 'dataset'")
    for key in ("title", "description", "license", "version"):
        if not _nonempty_str(record.get(key)):
            out.append(f"no {key}")
    creators = record.get("creators")
    if not (isinstance(creators, list) and creators
            and all(isinstance(c, dict) and _nonempty_str(c.get("name")) for c in creators)):
        out.append("no creators with a name")
    related = record.get("related_identifiers") or []
    if not any(isinstance(r, dict) and r.get("identifier") == PAPER_ARXIV for r in related):
        out.append(f"the paper ({PAPER_ARXIV}) is not among related_identifiers")
    if "git commit" not in str(record.get("notes", "")):
        out.append("no notes with the software's git commit")
    return out


def check_metadata(path: str | Path) -> list[str]:
    """Every way the metadata file at ``path`` (datacite.json or zenodo.json) is damaged."""
    path = Path(path)
    check = {DATACITE_NAME: check_datacite, ZENODO_NAME: check_zenodo}.get(path.name)
    if check is None:
        return [f"unknown metadata file (expected one of {', '.join(METADATA_FILES)})"]
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return [f"cannot be read ({exc})"]
    except json.JSONDecodeError as exc:
        return [f"not valid JSON ({exc})"]
    return check(record)
