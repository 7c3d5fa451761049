"""DORA figures: pure computation from deployment records to an immutable snapshot. No I/O."""
