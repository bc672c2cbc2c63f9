"""Resources: where things live, the pseudonymisation key and the configuration tables.

Register sources are in ``pipelines.sources``.

Values arrive when a run starts (the key through ``dg.EnvVar`` or a key file), never at import.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.configuration import ConfigDir
from pipelines.layout import Layout, Places


class PseudonymKey(dg.ConfigurableResource):
    """The secret HMAC-SHA256 pseudonym key: from ``CTI_PSEUDONYM_KEY`` (``key``) or a file (``key_file``).

    Only the key id (a fingerprint) is ever stored or shown; the key itself stays in memory. The key rules
    are ``analysis.ingest.pseudonym.key_problem``; :meth:`for_data` also refuses a key whose id differs from
    the one the data directory's pseudonyms carry (``pipelines.keys``), so a run launched from the UI or a
    sensor with another key stops before it writes.
    """

    key: str = ""
    key_file: str = ""

    def secret(self) -> bytes:
        """Return the key bytes, refusing keys that are missing or break the key rules."""
        from pipelines import keys
        from pipelines.settings import KEY_VARIABLE, KeySource

        if self.key_file:
            source = KeySource(variable=None, file=Path(self.key_file))
            secret = keys.read_secret(source)
        else:
            source = KeySource(variable=KEY_VARIABLE)
            secret = keys.read_secret(source, env={KEY_VARIABLE: self.key})
        if secret is None:
            raise keys.KeyRefused(f"no pseudonymisation key: {source.describe()} is not set "
                                  "or does not exist")
        return secret

    def for_data(self, layout: Layout) -> tuple[bytes, str]:
        """Return the key and its id after checking that the data directory's pseudonyms were made with it."""
        from analysis.ingest import pseudonym
        from pipelines import keys

        secret = self.secret()
        key_id = pseudonym.key_id(secret)
        keys.require_same_key(layout, key_id)
        return secret, key_id


class CodeLists(dg.ConfigurableResource):
    """Configuration tables that change over time (delmålgruppe codes, sites, register code families).

    ``config_dir`` is a deployment's configuration directory (empty: the packaged tables); see
    ``pipelines.configuration``.
    """

    config_dir: str = ""

    @property
    def config(self) -> ConfigDir:
        """The configuration directory: ``config_dir`` in front of the packaged defaults."""
        return ConfigDir(Path(self.config_dir) if self.config_dir else None)

    def table(self, name: str) -> pl.DataFrame:
        """Return configuration table ``name``, all columns as text."""
        return self.config.table(name)

    def site_ids(self) -> tuple[str, ...]:
        """Return the configured sites, in the order of ``sites.csv`` (read at each call)."""
        return self.config.site_ids()


class LayoutResource(Places, dg.ConfigurableResource):
    """The same places as a Dagster resource (key ``layout``): assets ask it where things live."""

    data_dir: str

    @property
    def root(self) -> Path:
        """The data directory."""
        return Path(self.data_dir)

    @property
    def value(self) -> Layout:
        """The plain :class:`Layout` (to hand to functions outside Dagster)."""
        return Layout(self.root)
