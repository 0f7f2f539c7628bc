"""aigateway-operator: manage Coder AI Gateway providers and keys from Kubernetes."""

__version__ = "0.1.0"
