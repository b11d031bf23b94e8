"""Where media bytes come from: W-API's download-media, or WhatsApp's CDN directly."""
