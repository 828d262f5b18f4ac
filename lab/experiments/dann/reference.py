"""Numbers reported elsewhere, shown beside ours for reference only (the tab, result.json, seed_reference.csv)."""
from __future__ import annotations

# The seed's reported numbers (ResNet-50, USPS → MNIST).
SEED_REFERENCE = [
    {"placement": "none", "GRL at": "no GRL (source only)", "source acc %": 95.20, "target acc %": 53.57},
    {"placement": "stage1", "GRL at": "backbone output", "source acc %": 99.62, "target acc %": 73.33},
    {"placement": "stage2", "GRL at": "after the classifier's first dense layer", "source acc %": 76.42,
     "target acc %": 35.39},
    {"placement": "stage3", "GRL at": "after the classifier's output", "source acc %": 98.36, "target acc %": 55.76},
]
PUBLIC_REFERENCE = ("Published: DANN USPS → MNIST 95.2 % target accuracy with a LeNet (source only 74.6 %).")
