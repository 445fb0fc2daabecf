"""Measure-only experiments: each answers a question about the recipe; none of them builds what ships."""
