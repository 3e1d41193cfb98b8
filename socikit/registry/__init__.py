"""socikit.registry"""
