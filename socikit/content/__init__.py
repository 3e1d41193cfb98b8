"""socikit.content"""
