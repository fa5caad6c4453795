"""Training and evaluation on the handbook protocol, with the product's feature code."""
