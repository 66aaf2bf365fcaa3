"""Everything spoken to Microsoft Graph and Entra. Imports nothing else of ours."""
