"""Request and response shapes (attrs), one module per resource; the same classes feed the OpenAPI document."""
