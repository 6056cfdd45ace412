"""The communications authority's dashboard (Dash + Plotly)."""
