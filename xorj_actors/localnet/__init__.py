"""Offline Solana cluster, quote service and quantitative engine speaking the real protocols."""
