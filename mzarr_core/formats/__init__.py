"""Reading and writing other image formats (issue 9): one module per format family, one registry of them."""
