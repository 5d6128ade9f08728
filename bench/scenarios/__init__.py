"""The benchmark scenarios S1-S13, in report order. Each module exports `SCENARIO`."""

from . import (
    s1_session,
    s2_interaction,
    s3_streaming,
    s4_memory,
    s5_bigdoc,
    s6_browser,
    s7_static,
    s8_nginx,
    s9_isolation,
    s10_cleanup,
    s11_soak,
    s12_machine,
    s13_metrics,
)

SCENARIOS = [
    m.SCENARIO
    for m in (
        s1_session, s2_interaction, s3_streaming, s4_memory, s5_bigdoc,
        s6_browser, s7_static, s8_nginx, s9_isolation, s10_cleanup, s11_soak, s12_machine, s13_metrics,
    )
]  # fmt: skip
BY_NAME = {s.name: s for s in SCENARIOS}
