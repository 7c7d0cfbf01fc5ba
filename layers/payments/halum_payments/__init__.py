"""Halum Hut payments: the domain code shared by every Lambda function (the layer)."""
