//! Who writes to whom: each client has a fixed contact list drawn with
//! Zipf-distributed popularity, so a few users are everyone's contact and
//! most are few people's — the heavy tail real address books show.

use rand::{Rng, RngExt};

/// Contact lists of every client.
#[derive(Clone, Debug)]
pub struct SocialGraph {
    contacts: Vec<Vec<u32>>,
}

impl SocialGraph {
    /// `clients` users with `per_client` distinct contacts each (never
    /// themselves), contact `j` chosen with weight ∝ 1/(rank_j)^s, where the
    /// popularity ranks are a random permutation of the users.
    pub fn zipf<R: Rng + ?Sized>(rng: &mut R, clients: usize, per_client: usize, s: f64) -> Self {
        let mut rank_to_user: Vec<u32> = (0..clients as u32).collect();
        for i in (1..clients).rev() {
            let j = rng.random_range(0..=i);
            rank_to_user.swap(i, j);
        }
        // Cumulative weights for inverse-transform sampling by binary search.
        let mut cdf = Vec::with_capacity(clients);
        let mut total = 0.0;
        for rank in 0..clients {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(total);
        }
        let per_client = per_client.min(clients.saturating_sub(1));
        let contacts = (0..clients as u32)
            .map(|me| {
                let mut list: Vec<u32> = Vec::with_capacity(per_client);
                while list.len() < per_client {
                    let x = rng.random::<f64>() * total;
                    let rank = cdf.partition_point(|&c| c < x).min(clients - 1);
                    let who = rank_to_user[rank];
                    if who != me && !list.contains(&who) {
                        list.push(who);
                    }
                }
                list
            })
            .collect();
        SocialGraph { contacts }
    }

    /// Contacts of `client`.
    pub fn contacts(&self, client: usize) -> &[u32] {
        self.contacts.get(client).map_or(&[], Vec::as_slice)
    }

    /// A contact of `client` for its next message, uniformly among its contacts.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R, client: usize) -> Option<u32> {
        let list = self.contacts(client);
        (!list.is_empty()).then(|| list[rng.random_range(0..list.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn contacts_are_distinct_not_self_and_heavy_tailed() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let g = SocialGraph::zipf(&mut rng, 500, 5, 1.0);
        let mut indegree = vec![0usize; 500];
        for c in 0..500 {
            let l = g.contacts(c);
            assert_eq!(l.len(), 5);
            assert!(!l.contains(&(c as u32)));
            let mut d = l.to_vec();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 5);
            l.iter().for_each(|&x| indegree[x as usize] += 1);
        }
        indegree.sort_unstable();
        // The most popular user is far above the mean in-degree of 5.
        assert!(indegree[499] > 50, "max in-degree {}", indegree[499]);
    }
}
