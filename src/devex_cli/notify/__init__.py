"""Pipeline events as Teams Adaptive Cards: input parsers, routing, rendering and delivery."""
