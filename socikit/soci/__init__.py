"""socikit.soci"""
