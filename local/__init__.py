"""The Docker-free local stand-in for API Gateway + Lambda (`make run`), and its helpers."""
