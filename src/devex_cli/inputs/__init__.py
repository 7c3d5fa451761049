"""The CI reports pipelines hand to devex, read into plain records: JUnit XML (`junit.py`),
Veracode Pipeline Scan and SCA JSON (`security.py`). Cards (notify/) and pushed metrics
(metrics/) are both built from them."""
