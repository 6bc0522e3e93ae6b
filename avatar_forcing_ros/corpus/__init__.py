"""The dyadic training corpus: simulated conversations with real synthesised speech
(simulator.py, visemes.py) and the af-dyadic-v1 dataset format on disk (dataset.py)."""
