"""The Teams app package: manifest template, icons, builder. Imports nothing else of ours."""
