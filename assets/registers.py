"""Register extracts, one file per year.

Population, benefits, employment, health, education, enrolment and stays.
"""


import dagster as dg

from analysis.schema import REGISTERS
from pipelines.layout import REGISTERS as REGISTER_STORE
from pipelines.layout import RESTRICTED
from pipelines.partitions import REGISTERS_GROUP
from pipelines.sources import RegisterSource
from pipelines.storage import OPTIONAL_KEY, STORE_KEY, YearlyFrames

DESCRIPTIONS = {
    "population": "BEF-like yearly population snapshots (PNR, KOEN, FOED_DAG, IE_TYPE, OPR_LAND, KOM).",
    "benefits": "DREAM-like weekly benefit codes, long and sparse: a missing week is a self-supporting week.",
    "employment": "eIndkomst-like monthly employment and earnings, one row per month in employment.",
    "health": "LPR-like hospital contacts (patient type, ICD-10 action diagnosis, dates, bed days).",
    "education": "UDDA-like highest completed education (HFAUDD) with validity dates.",
    "enrolment": "KOTRE-like education enrolment spells.",
    "stays": "Institution stays (§107-110 shelter/residential, psychiatric ward, prison) "
             "by year of discharge.",
}
#: Registers real extracts may lack; the panel then counts no discharges (``assets.linkage.outcome_panel``).
OPTIONAL_REGISTERS = ("stays",)


def _register_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=REGISTERS_GROUP,
        description=DESCRIPTIONS[name],
        metadata={STORE_KEY: REGISTER_STORE, OPTIONAL_KEY: name in OPTIONAL_REGISTERS},
        kinds={"parquet", "polars"},
    )
    def _asset(context: dg.AssetExecutionContext, register_source: RegisterSource) -> YearlyFrames:
        context.add_output_metadata({"source": register_source.describe()})
        return YearlyFrames(register_source.frames(name))

    return _asset


register_assets = [_register_asset(name) for name in REGISTERS]


@dg.asset(
    group_name=REGISTERS_GROUP,
    metadata={STORE_KEY: RESTRICTED},
    description="Restricted CPR -> PNR bridge of the register provider. "
                "Holds raw CPR: restricted store only.",
    kinds={"parquet"},
)
def cpr_key(register_source: RegisterSource):
    """Return the bridge from CPR to the register person key (only ever read by ``person_index``)."""
    frame = register_source.cpr_key()
    return dg.Output(frame, metadata={"persons": frame.height})


assets = [*register_assets, cpr_key]
