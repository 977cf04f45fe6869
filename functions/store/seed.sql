-- hello-retail seed data. Idempotent: rows that already exist are left alone.

INSERT INTO categories (name, description) VALUES
    ('cameras', 'Mirrorless and DSLR camera bodies'),
    ('lenses',  'Interchangeable lenses for full-frame and APS-C mounts'),
    ('tripods', 'Tripods, heads and travel supports'),
    ('bags',    'Camera backpacks, rollers and shoulder bags')
ON CONFLICT DO NOTHING;

INSERT INTO products (id, category, name, brand, description, price) VALUES
    ('p-cam-001', 'cameras', 'EOS R6 Mark II', 'Canon',
     '24.2 MP full-frame mirrorless body, 40 fps electronic shutter, 6K oversampled 4K video', 2499.00),
    ('p-cam-002', 'cameras', 'Alpha 7 IV', 'Sony',
     '33 MP full-frame hybrid body with real-time tracking autofocus', 2498.00),
    ('p-cam-003', 'cameras', 'Z6 II', 'Nikon',
     '24.5 MP full-frame mirrorless body with dual EXPEED 6 processors', 1996.95),
    ('p-cam-004', 'cameras', 'X-T5', 'Fujifilm',
     '40 MP APS-C body with classic dials and 5-axis stabilisation', 1699.00),
    ('p-len-001', 'lenses', 'RF 24-105mm F4 L IS USM', 'Canon',
     'Weather-sealed standard zoom for the RF mount', 1399.00),
    ('p-len-002', 'lenses', 'FE 85mm F1.8', 'Sony',
     'Compact portrait prime for E-mount', 599.99),
    ('p-len-003', 'lenses', 'NIKKOR Z 50mm f/1.8 S', 'Nikon',
     'Sharp standard prime for the Z mount', 629.95),
    ('p-len-004', 'lenses', '35mm F1.4 DG DN Art', 'Sigma',
     'Fast wide prime for L-mount and E-mount', 899.00),
    ('p-tri-001', 'tripods', '190XPRO Aluminium 3-Section', 'Manfrotto',
     'Aluminium tripod with 90-degree centre column, 7 kg payload', 229.88),
    ('p-tri-002', 'tripods', 'Travel Tripod Carbon Fibre', 'Peak Design',
     'Packs down to the diameter of a water bottle, 1.27 kg', 649.95),
    ('p-tri-003', 'tripods', 'GT2545T Traveler Series 2', 'Gitzo',
     'Carbon fibre travel tripod with reverse-folding legs', 979.95),
    ('p-tri-004', 'tripods', 'Mach3 TMA38CL Long', 'Benro',
     'Carbon fibre tripod for tall shooters, 16 kg payload', 399.00),
    ('p-bag-001', 'bags', 'Everyday Backpack 20L V2', 'Peak Design',
     'Weatherproof camera backpack with FlexFold dividers', 279.95),
    ('p-bag-002', 'bags', 'ProTactic BP 450 AW II', 'Lowepro',
     'Modular backpack for a pro body, 4-6 lenses and a 13-inch laptop', 249.95),
    ('p-bag-003', 'bags', 'Airport Security V3.0', 'Think Tank',
     'Carry-on rolling case for long lenses', 429.75),
    ('p-bag-004', 'bags', 'Hadley Pro', 'Billingham',
     'Canvas and leather shoulder bag for a compact kit', 289.00)
ON CONFLICT DO NOTHING;

INSERT INTO photographers (id, name, email, phone) VALUES
    ('ph-001', 'Dana Whitfield', 'dana.whitfield@example.com', '+1-555-0101'),
    ('ph-002', 'Mateo Ruiz', 'mateo.ruiz@example.com', '+1-555-0102')
ON CONFLICT DO NOTHING;

-- password_hash = hex(sha256(salt || ':' || password)), as product-purchase-authenticate computes it.
INSERT INTO users (username, salt, password_hash) VALUES
    ('alice', 'bceb59ef7c2898d3080230aaa02fface', '394129960be7de5ad13873db62de0fb27e070872390b0bb13a069f7085f742d8'),
    ('bob',   '981b0bb3715d9a3718ef0c48bee262e3', '1dabf9cd1181abd4c69f9886e4300649f2d506ecd04eeb501625dab4071d1584'),
    ('carol', '244bb3ebf29e8ef7991c54238ec02382', 'ece566366105d8ef0dd65c4006043b09b8ce8058cce7f29d3efee9d74d480720')
ON CONFLICT DO NOTHING;
