"""Pipeline events as Teams Adaptive Cards: routing, rendering and delivery."""
