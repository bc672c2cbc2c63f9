"""Resources: where things live, the pseudonymisation key and the configuration tables (register sources:
``pipelines.sources``).

Values arrive when a run starts (the key through ``dg.EnvVar`` or a key file), never at import.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.configuration import ConfigDir
from pipelines.layout import Layout, Places


class PseudonymKey(dg.ConfigurableResource):
    """The secret key for HMAC-SHA256 pseudonyms: from ``CTI_PSEUDONYM_KEY`` (``key``) or a file (``key_file``).

    Only the key id (a fingerprint) is ever stored or shown; the key itself stays in memory.
    """

    key: str = ""
    key_file: str = ""

    def secret(self) -> bytes:
        """Return the key bytes, refusing keys that are missing or too short."""
        from analysis.ingest import pseudonym

        value = Path(self.key_file).read_text().strip() if self.key_file else self.key
        secret = value.encode("utf-8")
        pseudonym.check_key(secret)
        return secret


class CodeLists(dg.ConfigurableResource):
    """Configuration tables that change over time (delmålgruppe codes, sites, register code families).

    ``config_dir`` is a deployment's configuration directory (empty: the packaged tables); see
    ``pipelines.configuration``.
    """

    config_dir: str = ""

    @property
    def config(self) -> ConfigDir:
        return ConfigDir(Path(self.config_dir) if self.config_dir else None)

    def table(self, name: str) -> pl.DataFrame:
        """Return configuration table ``name``, all columns as text."""
        return self.config.table(name)

    def site_ids(self) -> tuple[str, ...]:
        return self.config.site_ids()


class LayoutResource(Places, dg.ConfigurableResource):
    """The same places as a Dagster resource (key ``layout``): assets ask it where things live."""

    data_dir: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def value(self) -> Layout:
        """The plain :class:`Layout` (to hand to functions outside Dagster)."""
        return Layout(self.root)
